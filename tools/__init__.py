"""Developer tooling (not imported by pipelines)."""
