"""A loopback HTTP proxy in front of moto's Secrets Manager: counts calls and answers AWS errors on demand.

moto cannot refuse a GetSecretValue (it has no IAM enforcement for Secrets Manager here) nor throttle.
This proxy speaks Secrets Manager's wire protocol (AWS JSON 1.1: `POST /` with
`X-Amz-Target: secretsmanager.<Operation>`): it forwards every request to moto unchanged, except
GetSecretValue for a secret with a fault set, which it answers itself exactly as AWS does - HTTP 400
with `{"__type": "<ErrorCode>", "Message": "..."}` - so boto3 raises the same `ClientError` (and
applies the same retry rules) as against AWS.

Point boto3 at it with `AWS_ENDPOINT_URL_SECRETS_MANAGER=<proxy.url>`; S3 keeps going to moto.
"""

from __future__ import annotations

import json
import threading
from collections import Counter

import requests
from werkzeug.wrappers import Request, Response

from sandbox.base import HttpStandIn

# Messages as AWS words them (the principal and ARN are made up).
ERRORS = {
    "AccessDeniedException": (
        "User: arn:aws:sts::123456789012:assumed-role/prefect-worker/i-0abc is not authorized to "
        "perform: secretsmanager:GetSecretValue on resource: {secret} because no identity-based "
        "policy allows the secretsmanager:GetSecretValue action"
    ),
    "ThrottlingException": "Rate exceeded",
    "DecryptionFailure": "Secrets Manager can't decrypt the protected secret text using the provided KMS key.",
    "InvalidRequestException": (
        "You can't perform this operation on the secret because it was marked for deletion."
    ),
}


class SecretsManagerProxy(HttpStandIn):
    """Forwards to `upstream` (moto), with per-secret faults and a count of GetSecretValue calls.

    Args:
        upstream: moto's endpoint URL.
    """

    json_content_type = "application/x-amz-json-1.1"

    def __init__(self, upstream: str) -> None:
        super().__init__()
        self.upstream = upstream.rstrip("/")
        self._lock = threading.Lock()
        self._refusals: dict[str, str] = {}
        self._calls: Counter[str] = Counter()

    # -- control --------------------------------------------------------------------------------

    def fail(self, secret_id: str, error_code: str) -> None:
        """Answer GetSecretValue for `secret_id` with the AWS error `error_code` (a key of ERRORS)."""
        assert error_code in ERRORS, error_code
        with self._lock:
            self._refusals[secret_id] = error_code

    def reset(self) -> None:
        """No faults, no counted calls."""
        with self._lock:
            self._refusals.clear()
            self._calls.clear()

    def calls(self) -> dict[str, int]:
        """GetSecretValue calls so far, by SecretId (answered by moto or by a fault alike)."""
        with self._lock:
            return dict(self._calls)

    @property
    def url(self) -> str:
        return self.base_url

    # -- HTTP -----------------------------------------------------------------------------------

    def answer(self, request: Request) -> Response:
        body = request.get_data()
        headers = {"x-amzn-RequestId": "00000000-0000-0000-0000-000000000000"}
        if request.headers.get("X-Amz-Target", "").endswith(".GetSecretValue"):
            secret_id = str(json.loads(body or b"{}").get("SecretId", ""))
            with self._lock:
                self._calls[secret_id] += 1
                fault = self._refusals.get(secret_id)
            if fault is not None:
                message = ERRORS[fault].format(secret=secret_id)
                return self.json({"__type": fault, "Message": message}, 400, headers)
        forwarded = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        upstream = requests.post(
            self.upstream + request.full_path.rstrip("?"), data=body, headers=forwarded, timeout=30
        )
        return Response(upstream.content, upstream.status_code, headers, content_type=self.json_content_type)
