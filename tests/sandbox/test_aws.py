"""Tests for the moto-backed S3 and Secrets Manager sandbox."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import dlt
import pyarrow.parquet as pq
import pytest
import requests
from botocore.exceptions import ClientError

from sandbox.aws import DEFAULT_BUCKET, AwsSandbox


@pytest.fixture(scope="module")
def aws() -> Iterator[AwsSandbox]:
    # Module scope: starting moto costs about a second, and its state is process-wide anyway.
    with AwsSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def aws_env(aws: AwsSandbox, monkeypatch: pytest.MonkeyPatch) -> AwsSandbox:
    # Keep the test independent of whatever AWS settings the machine has.
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in aws.env().items():
        monkeypatch.setenv(name, value)
    return aws


def test_endpoint_is_loopback_on_the_port_actually_bound(aws: AwsSandbox) -> None:
    match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)", aws.endpoint_url)

    assert match is not None
    assert int(match[1]) > 0
    assert requests.get(f"{aws.endpoint_url}/moto-api/", timeout=10).status_code == 200


def test_landing_bucket_exists_in_the_region(aws: AwsSandbox) -> None:
    s3 = aws.boto3_client("s3")

    assert aws.bucket == DEFAULT_BUCKET == "exchange-rates-landing"
    s3.head_bucket(Bucket=aws.bucket)  # raises if missing
    assert s3.get_bucket_location(Bucket=aws.bucket)["LocationConstraint"] == "eu-west-1"


def test_create_bucket_is_idempotent(aws: AwsSandbox) -> None:
    aws.create_bucket("scratch-bucket")
    aws.create_bucket("scratch-bucket")

    names = [b["Name"] for b in aws.boto3_client("s3").list_buckets()["Buckets"]]

    assert names.count("scratch-bucket") == 1


def test_put_and_list_objects(aws: AwsSandbox) -> None:
    s3 = aws.boto3_client("s3")
    for key in ("put-list/a/1.txt", "put-list/a/2.txt", "put-list/b/1.txt"):
        s3.put_object(Bucket=aws.bucket, Key=key, Body=b"x")

    assert aws.list_objects(prefix="put-list/a/") == ["put-list/a/1.txt", "put-list/a/2.txt"]
    assert len(aws.list_objects(aws.bucket, prefix="put-list/")) == 3
    assert aws.list_objects(prefix="nothing-here/") == []


def test_secret_round_trip_and_update(aws: AwsSandbox) -> None:
    first = '{"sources": {"example": {"api_key": "first"}}}'  # pragma: allowlist secret
    second = '{"sources": {"example": {"api_key": "second"}}}'  # pragma: allowlist secret
    aws.put_secret("dlt/sources/example", first)
    aws.put_secret("dlt/sources/example", second)

    assert aws.get_secret("dlt/sources/example") == second
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        aws.get_secret("dlt/sources/missing")


def test_env_points_plain_boto3_clients_at_the_sandbox(aws_env: AwsSandbox) -> None:
    aws_env.put_secret("env-check", "hello")

    # No endpoint, region or credentials passed: they all come from the environment.
    secrets = boto3.client("secretsmanager")
    s3 = boto3.client("s3")

    stored = secrets.get_secret_value(SecretId="env-check")
    assert stored["SecretString"] == "hello"  # pragma: allowlist secret
    assert aws_env.bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_dlt_filesystem_destination_lands_parquet_in_the_bucket(aws_env: AwsSandbox, tmp_path: Path) -> None:
    pipeline = dlt.pipeline(
        pipeline_name="aws_sandbox_check",
        destination="filesystem",
        dataset_name="sandbox_check",
        pipelines_dir=str(tmp_path),
    )

    info = pipeline.run(
        [{"day": "2024-06-14", "currency": "USD", "rate": 1.0712}],
        table_name="rates",
        loader_file_format="parquet",
    )

    assert not info.has_failed_jobs
    keys = aws_env.list_objects(prefix="sandbox_check/rates/")
    assert len(keys) == 1
    assert keys[0].endswith(".parquet")
    body = aws_env.boto3_client("s3").get_object(Bucket=aws_env.bucket, Key=keys[0])["Body"].read()
    table = pq.read_table(io.BytesIO(body))
    assert table.column("currency").to_pylist() == ["USD"]
    assert table.column("rate").to_pylist() == [1.0712]
    # dlt's own bookkeeping lands beside the data.
    assert aws_env.list_objects(prefix="sandbox_check/_dlt_loads/")


RESET_SCRIPT = """
from botocore.exceptions import ClientError
from sandbox.aws import AwsSandbox

with AwsSandbox(bucket="reset-check") as sandbox:
    sandbox.create_bucket("other-bucket")
    sandbox.boto3_client("s3").put_object(Bucket="reset-check", Key="old", Body=b"")
    sandbox.put_secret("reset-secret", "x")
    sandbox.reset()
    buckets = [b["Name"] for b in sandbox.boto3_client("s3").list_buckets()["Buckets"]]
    try:
        sandbox.get_secret("reset-secret")
        secret = "still there"  # pragma: allowlist secret
    except ClientError:
        secret = "gone"  # pragma: allowlist secret
    print(buckets, sandbox.list_objects(), secret)
"""


def test_reset_empties_the_account_but_keeps_the_landing_bucket() -> None:
    # In a child process: reset() wipes moto's process-wide state, which other tests' sandboxes share.
    result = subprocess.run(
        [sys.executable, "-c", RESET_SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )

    assert result.stdout.strip() == "['reset-check'] [] gone"


def test_stop_releases_the_port() -> None:
    sandbox = AwsSandbox(bucket="stop-check").start()
    url = sandbox.endpoint_url

    sandbox.stop()
    sandbox.stop()  # idempotent

    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/moto-api/", timeout=2)
    with pytest.raises(RuntimeError, match="not running"):
        _ = sandbox.endpoint_url
