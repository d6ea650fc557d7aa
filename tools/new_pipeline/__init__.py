"""The pipeline generator: `./dev new-pipeline <name> <pattern>`."""
