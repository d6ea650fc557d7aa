"""Fixtures for tests/utils: AWS Secrets Manager (moto behind a fault proxy) as the dlt vault, key pairs."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.aws import AwsSandbox
from tests.utils.key_pairs import new_key
from tests.utils.secretsmanager_proxy import SecretsManagerProxy
from utils.vault_provider import unregister_vault_provider


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    """A Snowflake key pair's private key, made up for the test module."""
    return new_key()


@pytest.fixture(scope="session")
def secretsmanager_proxy(aws_sandbox: AwsSandbox) -> Iterator[SecretsManagerProxy]:
    with SecretsManagerProxy(aws_sandbox.endpoint_url) as proxy:
        yield proxy


@dataclass
class Vault:
    """The test's own corner of (moto's) AWS Secrets Manager, with the provider pointed at it."""

    aws: AwsSandbox
    proxy: SecretsManagerProxy
    prefix: str

    def name(self, section: str) -> str:
        """`sources/hubspot` -> `<prefix>/sources/hubspot`."""
        return f"{self.prefix}/{section}"

    def put(self, section: str, document: dict[str, Any]) -> str:
        name = self.name(section)
        self.aws.put_secret(name, json.dumps(document))
        return name

    def put_raw(self, section: str, text: str) -> str:
        name = self.name(section)
        self.aws.put_secret(name, text)
        return name

    def delete(self, section: str) -> None:
        self.aws.boto3_client("secretsmanager").delete_secret(
            SecretId=self.name(section), ForceDeleteWithoutRecovery=True
        )


def aws_environment(aws: AwsSandbox, proxy: SecretsManagerProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    """boto3 pointed at moto (S3) and at the proxy (Secrets Manager), nothing from the machine."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in aws.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", proxy.url)
    # One retry: enough to see botocore retry a throttled call, short enough for a test.
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def vault(
    aws_sandbox: AwsSandbox, secretsmanager_proxy: SecretsManagerProxy, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Vault]:
    """The vault provider enabled, under a prefix of the test's own (moto's state is process-wide)."""
    aws_environment(aws_sandbox, secretsmanager_proxy, monkeypatch)
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("VAULT__ENABLED", "true")
    monkeypatch.setenv("VAULT__PREFIX", prefix)
    secretsmanager_proxy.reset()
    yield Vault(aws_sandbox, secretsmanager_proxy, prefix)
    secretsmanager_proxy.reset()
    unregister_vault_provider()


@pytest.fixture(autouse=True)
def no_vault_left_behind() -> Iterator[None]:
    """Whatever a test enabled, the next one starts with the vault provider unregistered."""
    yield
    unregister_vault_provider()
