"""Prefect automations kept in the repository, and the script that applies them to a Prefect server.

Automations run on the Prefect server, not in the flow's process: an alert fires even when the
process running the flow dies. `python -m automations.apply` creates or updates them (CI runs it
after `prefect deploy --all`).
"""
