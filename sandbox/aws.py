"""S3 and Secrets Manager on loopback, through moto in server mode.

`AwsSandbox` serves moto's WSGI application (what `moto.server.ThreadedMotoServer` serves, with
moto's request handler) on the sandbox's one HTTP server base, on 127.0.0.1 with a port chosen by
the OS, creates the landing bucket, and hands out what clients need to talk to it: `boto3_client()` for code in the
same process, and `env()` for anything configured through environment variables (boto3 itself, dlt's
filesystem destination through s3fs, dlt's AWS Secrets Manager provider).

moto keeps its fake AWS state in module globals, so every `AwsSandbox` in one process sees the same
buckets and secrets; call `reset()` to start from an empty account.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

from sandbox.base import HttpStandIn

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

REGION = "eu-west-1"
DEFAULT_BUCKET = "exchange-rates-landing"

# Obviously fake: moto accepts any credentials, and these must never resemble real ones.
FAKE_ACCESS_KEY_ID = "testing"
FAKE_SECRET_ACCESS_KEY = "testing"  # noqa: S105  # pragma: allowlist secret - fake by design

_S3_CONFIG = Config(
    # Path-style addressing: virtual-host style would need DNS for `<bucket>.127.0.0.1`.
    s3={"addressing_style": "path"},
    retries={"max_attempts": 2, "mode": "standard"},
)


class _QuietMotoHandler(MotoRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No access log: test output stays readable."""


class AwsSandbox(HttpStandIn):
    """moto's S3 and Secrets Manager served on loopback, with a landing bucket ready.

    Use it as a context manager (or call `start()`/`stop()`):

        with AwsSandbox() as aws:
            monkeypatch.setenv(...) for each item of aws.env()
            ...
            assert aws.list_objects(prefix="exchange_rates/")

    Attributes:
        region: AWS region every client is pointed at.
        bucket: Name of the bucket created at start.
        access_key_id: Fake access key id accepted by moto.
        secret_access_key: Fake secret access key accepted by moto.
    """

    region = REGION
    access_key_id = FAKE_ACCESS_KEY_ID
    secret_access_key = FAKE_SECRET_ACCESS_KEY

    request_handler = _QuietMotoHandler

    def __init__(self, *, bucket: str = DEFAULT_BUCKET, host: str = "127.0.0.1", port: int = 0):
        """Prepare the sandbox; nothing listens until `start()`.

        Args:
            bucket: Name of the bucket to create at start.
            host: Interface to bind; keep the loopback default.
            port: Port to bind; 0 lets the OS choose a free one.
        """
        super().__init__(host=host, port=port)
        self.bucket = bucket

    def wsgi_app(self) -> WSGIApplication:
        """Moto's application, dispatching by service like `ThreadedMotoServer`."""
        return DomainDispatcherApplication(create_backend_app)

    def _start(self) -> None:
        super()._start()
        self.create_bucket(self.bucket)

    def reset(self) -> None:
        """Empty moto's whole fake account (every bucket and secret), then recreate the bucket."""
        response = requests.post(f"{self.endpoint_url}/moto-api/reset", timeout=10)
        response.raise_for_status()
        self.create_bucket(self.bucket)

    @property
    def endpoint_url(self) -> str:
        """Endpoint for every AWS service, e.g. `http://127.0.0.1:54321` (RuntimeError when stopped)."""
        return self.root_url

    # -- clients and configuration ---------------------------------------------------------------

    def boto3_client(self, service: str) -> Any:
        """Create a boto3 client for `service` pointed at the sandbox with the fake credentials.

        Args:
            service: e.g. `s3` or `secretsmanager`.

        Returns:
            The boto3 client (typed `Any`: boto3 ships no type stubs here).
        """
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            config=_S3_CONFIG,
        )

    def env(self) -> dict[str, str]:
        """Environment variables that point boto3 and dlt's filesystem destination at the sandbox.

        boto3 (1.28 and later) reads `AWS_ENDPOINT_URL`, so any client created without arguments
        talks to the sandbox; dlt's filesystem destination gets the bucket URL and credentials in its
        own configuration keys, which it passes on to s3fs.

        Returns:
            Variable name to value; apply them with `monkeypatch.setenv` or a subprocess `env`.
        """
        endpoint = self.endpoint_url
        credentials = "DESTINATION__FILESYSTEM__CREDENTIALS__"
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL": endpoint,
            "DESTINATION__FILESYSTEM__BUCKET_URL": f"s3://{self.bucket}",
            f"{credentials}AWS_ACCESS_KEY_ID": self.access_key_id,
            f"{credentials}AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            f"{credentials}REGION_NAME": self.region,
            f"{credentials}ENDPOINT_URL": endpoint,
        }

    # -- S3 --------------------------------------------------------------------------------------

    def create_bucket(self, name: str) -> None:
        """Create a bucket in `region`; do nothing if it already exists.

        Args:
            name: Bucket name.

        Raises:
            ClientError: S3 refused for another reason than the bucket existing already.
        """
        try:
            self.boto3_client("s3").create_bucket(
                Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.region}
            )
        except ClientError as exc:
            # moto's state outlives a sandbox (see the module docstring), so this is expected.
            if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                raise

    def list_objects(self, bucket: str | None = None, prefix: str = "") -> list[str]:
        """List every object key under `prefix`, sorted.

        Args:
            bucket: Bucket to list; defaults to `bucket` (the landing bucket).
            prefix: Key prefix to filter on.

        Returns:
            The object keys.
        """
        paginator = self.boto3_client("s3").get_paginator("list_objects_v2")
        keys: list[str] = []
        for page in paginator.paginate(Bucket=bucket or self.bucket, Prefix=prefix):
            keys.extend(str(item["Key"]) for item in page.get("Contents", []))
        return sorted(keys)

    # -- Secrets Manager -------------------------------------------------------------------------

    def put_secret(self, name: str, value: str) -> None:
        """Create the secret `name` with `value`, or store `value` as its new version.

        Args:
            name: Secret name, e.g. `dlt/sources/currencies`.
            value: Secret string (e.g. a JSON or TOML document).
        """
        client = self.boto3_client("secretsmanager")
        try:
            client.create_secret(Name=name, SecretString=value)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceExistsException":
                raise
            client.put_secret_value(SecretId=name, SecretString=value)

    def get_secret(self, name: str) -> str:
        """Read the current value of the secret `name`.

        Args:
            name: Secret name.

        Returns:
            Its secret string.
        """
        response = self.boto3_client("secretsmanager").get_secret_value(SecretId=name)
        return str(response["SecretString"])
