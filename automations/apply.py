"""Create or update the repository's automations, and their notification block, on a Prefect server.

Usage (PREFECT_API_URL and, for Prefect Cloud, PREFECT_API_KEY in the environment):

    ALERT_WEBHOOK_URL=https://hooks.slack.com/services/... python -m automations.apply

* The notification block `custom-webhook/pipeline-alerts` posts `{"text": ...}` - the payload of
  Slack's incoming webhooks, also understood by Mattermost, Rocket.Chat and others - to the URL in
  `ALERT_WEBHOOK_URL`. The URL is stored as a secret value of the block (Prefect encrypts it and
  never shows it), never in the repository. Without `ALERT_WEBHOOK_URL` the block on the server is
  kept as it is, so a deploy without the secret does not break alerting; with neither, this fails.
* Every `automations/*.yaml` is an automation in Prefect's schema, except that an action's
  `notification_block` names the block instead of giving its id. Automations are matched by name:
  an existing one is updated in place, a new one created, so running this again changes nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import yaml
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client
from prefect.events.schemas.automations import AutomationCore
from prefect.types import SecretDict
from pydantic import TypeAdapter

AUTOMATIONS_DIR = Path(__file__).resolve().parent
BLOCK_NAME = "pipeline-alerts"
WEBHOOK_URL_VARIABLE = "ALERT_WEBHOOK_URL"
# Slack's incoming-webhook payload; mrkdwn makes the subject bold.
SLACK_PAYLOAD = {"text": "*{{subject}}*\n{{body}}"}


def ensure_notification_block(webhook_url: str | None, *, allow_private_urls: bool = False) -> UUID:
    """Create or update the webhook block, or keep the existing one when no URL is given.

    Args:
        webhook_url: The incoming-webhook URL (a secret), or None to keep the block on the server.
        allow_private_urls: Let the block post to private addresses (a local test receiver). Off in
            production, where the webhook is a public service.

    Returns:
        The block document's id.

    Raises:
        SystemExit: No URL was given and the server has no such block yet.
    """
    if webhook_url is None:
        try:
            existing = cast(CustomWebhookNotificationBlock, CustomWebhookNotificationBlock.load(BLOCK_NAME))
        except ValueError:
            raise SystemExit(
                f"No notification block '{BLOCK_NAME}' on the server yet: set {WEBHOOK_URL_VARIABLE} "
                "to the team's incoming-webhook URL and run this again."
            ) from None
        if existing._block_document_id is None:
            raise SystemExit(f"The notification block '{BLOCK_NAME}' has no id on the server.")
        return existing._block_document_id
    block = CustomWebhookNotificationBlock(
        name="data-pipelines alerts",
        # The whole URL is a secret (Slack's carries the token in its path), so it is substituted
        # from the block's secrets rather than stored in plain `url`.
        url="{{webhook_url}}",
        json_data=SLACK_PAYLOAD,
        headers=None,
        cookies=None,
        secrets=SecretDict({"webhook_url": webhook_url}),
        allow_private_urls=allow_private_urls,
    )
    return cast(UUID, block.save(BLOCK_NAME, overwrite=True))


def load_definitions(block_id: UUID, directory: Path = AUTOMATIONS_DIR) -> list[AutomationCore]:
    """Read every automation file in `directory`, with `notification_block` resolved to `block_id`.

    Args:
        block_id: Id of the notification block.
        directory: Where the YAML files are.

    Returns:
        The automations, validated against Prefect's schema.
    """
    adapter = TypeAdapter(AutomationCore)
    automations = []
    for path in sorted(directory.glob("*.yaml")):
        spec: dict[str, Any] = yaml.safe_load(path.read_text())
        for action in spec.get("actions", []):
            name = action.pop("notification_block", None)
            if name is not None:
                if name != BLOCK_NAME:
                    raise SystemExit(f"{path.name}: unknown notification_block {name!r}; use {BLOCK_NAME!r}")
                action["block_document_id"] = str(block_id)
        automations.append(adapter.validate_python(spec))
    return automations


def apply(automations: list[AutomationCore]) -> dict[str, UUID]:
    """Create each automation, or update the one of the same name (removing duplicates of it).

    Args:
        automations: What the server should have.

    Returns:
        Automation ids by name.
    """
    applied: dict[str, UUID] = {}
    with get_client(sync_client=True) as client:
        for automation in automations:
            existing = client.read_automations_by_name(automation.name)
            if existing:
                keep, *extra = existing
                client.update_automation(keep.id, automation)
                for duplicate in extra:
                    client.delete_automation(duplicate.id)
                applied[automation.name] = keep.id
            else:
                applied[automation.name] = client.create_automation(automation)
    return applied


def main(argv: list[str] | None = None) -> int:
    """Apply the block and automations; prints what it did (never the URL)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--allow-private-urls",
        action="store_true",
        help="let the webhook block post to private addresses (local servers and tests only)",
    )
    args = parser.parse_args(argv)
    url = os.environ.get(WEBHOOK_URL_VARIABLE) or None
    block_id = ensure_notification_block(url, allow_private_urls=args.allow_private_urls)
    print(f"notification block '{BLOCK_NAME}': {'updated' if url else 'kept'}")
    for name, automation_id in apply(load_definitions(block_id)).items():
        print(f"automation '{name}': {automation_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
