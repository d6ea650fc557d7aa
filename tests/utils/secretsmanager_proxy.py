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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

import requests

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


class SecretsManagerProxy:
    """Forwards to `upstream` (moto), with per-secret faults and a count of GetSecretValue calls.

    Args:
        upstream: moto's endpoint URL.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self._lock = threading.Lock()
        self._faults: dict[str, str] = {}
        self._calls: Counter[str] = Counter()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control --------------------------------------------------------------------------------

    def fail(self, secret_id: str, error_code: str) -> None:
        """Answer GetSecretValue for `secret_id` with the AWS error `error_code` (a key of ERRORS)."""
        assert error_code in ERRORS, error_code
        with self._lock:
            self._faults[secret_id] = error_code

    def reset(self) -> None:
        """No faults, no counted calls."""
        with self._lock:
            self._faults.clear()
            self._calls.clear()

    def calls(self) -> dict[str, int]:
        """GetSecretValue calls so far, by SecretId (answered by moto or by a fault alike)."""
        with self._lock:
            return dict(self._calls)

    @property
    def url(self) -> str:
        assert self._server is not None, "proxy not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Self:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                target = self.headers.get("X-Amz-Target", "")
                if target.endswith(".GetSecretValue"):
                    secret_id = str(json.loads(body or b"{}").get("SecretId", ""))
                    with proxy._lock:
                        proxy._calls[secret_id] += 1
                        fault = proxy._faults.get(secret_id)
                    if fault is not None:
                        message = ERRORS[fault].format(secret=secret_id)
                        self._answer(400, json.dumps({"__type": fault, "Message": message}).encode())
                        return
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
                }
                upstream = requests.post(proxy.upstream + self.path, data=body, headers=headers, timeout=30)
                self._answer(upstream.status_code, upstream.content)

            def _answer(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000")
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="sm-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
