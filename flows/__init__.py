"""Prefect flows: when each pipeline runs, how it retries, what it reports."""
