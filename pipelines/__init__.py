"""dlt pipeline configurations: where each source's data goes (destination and dataset)."""

from utils import gc_settings

# Before dlt and the sources are imported: see utils/gc_settings.py.
gc_settings.apply()
