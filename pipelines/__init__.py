"""dlt pipeline configurations: where each source's data goes (destination and dataset)."""
