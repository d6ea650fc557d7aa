"""dlt sources: what is extracted, with no knowledge of destinations or orchestration."""
