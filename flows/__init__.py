"""Prefect flows: when each pipeline runs, how it retries, what it reports."""

from utils import gc_settings

# Before Prefect and the pipelines are imported where possible: see utils/gc_settings.py.
gc_settings.apply()
