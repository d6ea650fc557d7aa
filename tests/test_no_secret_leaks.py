"""No secret value in any log line, Prefect log, artifact, state message, exception or output.

Every flow of the main job runs under Prefect (its test harness: a real API and database) with the
secrets only in AWS Secrets Manager (moto), then again with secrets that fail (a wrong HubSpot token,
a missing PostgreSQL secret, a secret that is not JSON). Everything the run produced is captured -
Python logging at DEBUG (caplog), the process's stdout and stderr (capfd: dlt's own logger, Prefect's
console), the logs, states and artifacts read back from the Prefect API, the exceptions - and
searched for every secret value.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.logging.handlers import APILogHandler
from prefect.server.api.server import SubprocessASGIServer
from prefect.settings import PREFECT_API_URL
from prefect.testing.utilities import prefect_test_harness

from flows.common import all_flows
from sandbox import Sandbox
from sandbox.aws import AwsSandbox
from utils.check import pipeline_names
from utils.vault_provider import unregister_vault_provider

# Secrets hold every URL and TOML metacharacter between random tokens; a leak of any token counts.
METACHARACTERS = ["@", ":", "/", "#", "%", "?", "&", "=", '"', "'", "\\", " "]


def metacharacter_secret(prefix: str) -> tuple[str, list[str]]:
    """A secret made of random tokens joined by every metacharacter, and its tokens."""
    tokens = [f"{prefix}{uuid.uuid4().hex[:10]}" for _ in range(len(METACHARACTERS) + 1)]
    return "".join(t + c for t, c in zip(tokens, [*METACHARACTERS, ""], strict=True)), tokens


WRONG_TOKEN, WRONG_TOKEN_PARTS = metacharacter_secret("pat")


@pytest.fixture(scope="module")
def prefect_api() -> Iterator[None]:
    """Prefect's test harness - the one tests/flows started for the session if it is running.

    Nesting a second harness inside it makes flows wait forever on their pipeline lock (the
    global concurrency limit is created on one server and acquired through the other), so the
    running one is shared. It is recognised as the server the harness registered as Prefect's
    default (`SubprocessASGIServer._instances[None]`), never just any configured API URL.
    """
    active = SubprocessASGIServer._instances.get(None)
    if active is not None and active.server_process is not None and PREFECT_API_URL.value() == active.api_url:
        yield
        return
    # Generous: on a busy 2-core machine (other runs, xdist workers) the server takes minutes to start.
    with prefect_test_harness(server_startup_timeout=300):
        yield


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(products=300, hubspot=40) as running:
        # The database password holds every metacharacter, so a message that quotes any part of a
        # mis-parsed URL would show one of its tokens.
        password, _ = metacharacter_secret("pg")
        running.postgres.set_reader_password(password)
        yield running


@pytest.fixture
def secrets_in_vault(
    sandbox: Sandbox, aws_sandbox: AwsSandbox, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, dict[str, str]]]:
    """The sandbox's secrets as JSON secrets in moto, the vault on; base URLs as plain configuration.

    Yields:
        The secret prefix, and every secret value by its dlt key.
    """
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in aws_sandbox.env().items():
        monkeypatch.setenv(name, value)
    prefix = f"leaks-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("VAULT__ENABLED", "true")
    monkeypatch.setenv("VAULT__PREFIX", prefix)
    monkeypatch.setenv("RUNTIME__LOG_LEVEL", "DEBUG")  # dlt's own logger at its most talkative
    monkeypatch.setenv(
        "SOURCES__EXCHANGE_RATES__START_DATE", (dt.date.today() - dt.timedelta(days=7)).isoformat()
    )
    secrets: dict[str, str] = {}
    documents: dict[str, dict[str, Any]] = {}
    for name, value in sandbox.env().items():
        if name.endswith("__BASE_URL"):
            monkeypatch.setenv(name, value)
            continue
        top, section, *path = name.lower().split("__")
        node = documents.setdefault(f"{top}/{section}", {})
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
        if path[-1] in ("password", "access_token"):
            secrets[".".join((top, section, *path))] = value
    for section, document in documents.items():
        aws_sandbox.put_secret(f"{prefix}/{section}", json.dumps(document))
    # The seed's two, and those of pipelines added later (generated saas and sql stand-ins).
    assert {"sources.products.credentials.password", "sources.hubspot.access_token"} <= set(secrets)
    assert {key.split(".")[1] for key in secrets} <= set(pipeline_names())
    assert all(c in secrets["sources.products.credentials.password"] for c in METACHARACTERS)
    yield prefix, secrets
    unregister_vault_provider()


def prefect_records() -> list[str]:
    """Every log message, state message and artifact the Prefect API holds."""
    APILogHandler().flush()

    async def read() -> list[str]:
        async with get_client() as client:
            logs = await client.read_logs()
            flow_runs = await client.read_flow_runs()
            task_runs = await client.read_task_runs()
            artifacts = await client.read_artifacts()
        texts = [log.message for log in logs]
        for run in [*flow_runs, *task_runs]:
            if run.state is not None:
                texts.append(f"{run.name} {run.state.name}: {run.state.message or ''}")
        texts += [f"{a.key} {a.description} {a.data}" for a in artifacts]
        return texts

    return asyncio.run(read())


@contextmanager
def quiet_test_setup() -> Iterator[None]:
    """The test's own boto3 calls that write secrets: botocore logs request bodies at DEBUG."""
    botocore_logger = logging.getLogger("botocore")
    level = botocore_logger.level
    botocore_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        botocore_logger.setLevel(level)


def run_every_flow() -> dict[str, Any]:
    states = {}
    for name, flow in all_flows().items():
        states[name] = flow(return_state=True)
    return states


def test_no_secret_value_leaks_from_runs_that_succeed_or_fail(
    prefect_api: None,
    sandbox: Sandbox,
    secrets_in_vault: tuple[str, dict[str, str]],
    aws_sandbox: AwsSandbox,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    prefix, secrets = secrets_in_vault
    caplog.set_level(logging.DEBUG)  # botocore, urllib3, prefect, sqlalchemy... everything

    # 1. Every flow succeeds, reading its secrets from the vault.
    states = run_every_flow()
    assert {"currencies", "exchange_rates", "hubspot", "products"} <= set(states)
    assert all(state.is_completed() for state in states.values()), {n: s.message for n, s in states.items()}
    outputs = [repr(state.result()) for state in states.values()]

    # 2. Now they fail: a token HubSpot rejects, a database secret gone, a secret that is not JSON.
    with quiet_test_setup():
        aws_sandbox.put_secret(f"{prefix}/sources/hubspot", json.dumps({"access_token": WRONG_TOKEN}))
        aws_sandbox.boto3_client("secretsmanager").delete_secret(
            SecretId=f"{prefix}/sources/products", ForceDeleteWithoutRecovery=True
        )
        broken = '{"base_url": "' + secrets["sources.hubspot.access_token"] + '",}'
        aws_sandbox.put_secret(f"{prefix}/sources/currencies", broken)
    failed = run_every_flow()
    for name in ("hubspot", "products", "currencies"):
        assert failed[name].is_failed(), name
    messages = [state.message or "" for state in failed.values()]
    errors = [state.result(raise_on_failure=False) for state in failed.values()]
    exceptions = [
        f"{type(e).__name__}: {e} {e.__cause__!r} {e.__context__!r}"
        for e in errors
        if isinstance(e, BaseException)
    ]
    assert any("sources.products.credentials" in m for m in messages + exceptions)
    assert any(f"{prefix}/sources/currencies' is not valid JSON" in e for e in exceptions)

    # 3. The database credentials as one URL whose password is not URL-encoded: refused by key.
    pg = sandbox.postgres.dlt_credentials()
    raw_url = f"postgresql://{pg['username']}:{pg['password']}@{pg['host']}:{pg['port']}/{pg['database']}"
    with quiet_test_setup():
        aws_sandbox.put_secret(f"{prefix}/sources/products", json.dumps({"credentials": raw_url}))
    unencoded = all_flows()["products"](return_state=True)
    assert unencoded.is_failed()
    error = unencoded.result(raise_on_failure=False)
    assert isinstance(error, BaseException)
    assert "URL-encoded" in str(error) and "sources.products.credentials" in str(error)
    messages.append(unencoded.message or "")
    exceptions.append(f"{type(error).__name__}: {error} {error.__cause__!r} {error.__context__!r}")

    captured = capfd.readouterr()
    corpora = {
        "caplog": "\n".join([caplog.text] + [r.getMessage() + (r.exc_text or "") for r in caplog.records]),
        "stdout": captured.out,
        "stderr": captured.err,
        "prefect": "\n".join(prefect_records()),
        "states and results": "\n".join(messages + exceptions + outputs),
    }
    # The corpora hold the runs' story (so a leak would be in them), just not the secrets.
    assert "currencies" in corpora["prefect"] and "hubspot" in corpora["prefect"]
    assert caplog.records
    password_parts = [
        part
        for part in _split(secrets["sources.products.credentials.password"])
        if len(part) >= 6  # the random tokens, not the single metacharacters between them
    ]
    for value in [*secrets.values(), WRONG_TOKEN, *WRONG_TOKEN_PARTS, *password_parts]:
        for where, text in corpora.items():
            assert value not in text, f"a secret value (or part of one) appears in {where}"


def _split(secret: str) -> list[str]:
    parts = [secret]
    for character in METACHARACTERS:
        parts = [piece for part in parts for piece in part.split(character)]
    return parts
