"""`./dev check-config` and a run agree on every Snowflake key form and credential form (issue 15.3).

Each case is given to both: the check (`utils.check.check_pipeline`) and a real run of the
currencies pipeline into "Snowflake" (dlt's Snowflake destination, which decodes the key itself when
it connects, on the fakesnow emulator). Each is either accepted by both - the check says ready and
the run loads - or refused by both, naming the setting, never the value, and the run's refusal is
permanent: the flows do not retry it.
"""

from __future__ import annotations

import base64
import secrets
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from prefect.states import Failed

import pipelines.currencies as currencies_pipeline
from flows.common import retry_unless_permanent
from flows.currencies import load_currencies
from sandbox.frankfurter import FrankfurterServer
from tests.snowflake.fakesnow_shim import SnowflakeEmulator
from tests.utils.key_pairs import pem
from utils.check import check_pipeline
from utils.errors import ConfigurationError

pytestmark = pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result")

CREDENTIALS = "DESTINATION__SNOWFLAKE__CREDENTIALS"
KEY = "destination.snowflake.credentials.private_key"
PASSPHRASE = secrets.token_urlsafe(12)  # made up per run
PASSWORD = secrets.token_urlsafe(12)  # made up per run
HOST, DATABASE, USER = "xy12345.eu-west-1", "RAW", "SVC_DLT"


def der(key: rsa.RSAPrivateKey, passphrase: str | None = None) -> bytes:
    encryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, encryption)


def b64(data: str | bytes) -> str:
    """`base64 -w0`: one line."""
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def wrapped(data: str | bytes) -> str:
    """Plain `base64 rsa_key.p8`: 76-column lines and a trailing newline."""
    return "\n".join(textwrap.wrap(b64(data), 76)) + "\n"


# name -> (private_key, passphrase) built from the test key. Every one is a key dlt's docs or ours
# describe, in the shapes people paste them: with a trailing newline, CRLF line ends, wrapped base64.
GOOD_KEYS: dict[str, Callable[[rsa.RSAPrivateKey], tuple[str, str | None]]] = {
    "pem": lambda k: (pem(k), None),
    "pem, CRLF line ends": lambda k: (pem(k).replace("\n", "\r\n"), None),
    "encrypted pem": lambda k: (pem(k, PASSPHRASE), PASSPHRASE),
    "base64 pem, one line": lambda k: (b64(pem(k)), None),
    "base64 pem, trailing newline": lambda k: (b64(pem(k)) + "\n", None),
    "base64 pem, 76-column lines": lambda k: (wrapped(pem(k)), None),
    "base64 encrypted pem, 76-column lines": lambda k: (wrapped(pem(k, PASSPHRASE)), PASSPHRASE),
    "base64 encrypted pem, one line": lambda k: (b64(pem(k, PASSPHRASE)), PASSPHRASE),
    "base64 der": lambda k: (b64(der(k)), None),
    "base64 der, 76-column lines": lambda k: (wrapped(der(k)), None),
    "base64 encrypted der": lambda k: (b64(der(k, PASSPHRASE)), PASSPHRASE),
    "base64 encrypted der, trailing newline": lambda k: (b64(der(k, PASSPHRASE)) + "\n", PASSPHRASE),
}

BAD_KEYS: dict[str, Callable[[rsa.RSAPrivateKey], tuple[str, str | None, str]]] = {
    "wrong passphrase": lambda k: (
        pem(k, PASSPHRASE),
        "not-the-passphrase",
        "private_key_passphrase does not decrypt",
    ),
    "encrypted, no passphrase": lambda k: (wrapped(pem(k, PASSPHRASE)), None, "is encrypted but"),
    "truncated base64": lambda k: (b64(der(k))[:400], None, KEY),
    "not a key": lambda k: ("please-fill-me-in", None, KEY),
    "an EC key": lambda k: (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode(),
        None,
        "is not an RSA key",
    ),
}


@pytest.fixture
def snowflake(monkeypatch: pytest.MonkeyPatch) -> Iterator[SnowflakeEmulator]:
    """The production destination (no DLT__DESTINATION), no Snowflake setting yet, on fakesnow."""
    monkeypatch.delenv("DLT__DESTINATION")
    with SnowflakeEmulator().running() as emulator:
        yield emulator


def separate_keys(monkeypatch: pytest.MonkeyPatch, **values: str | None) -> None:
    """dlt's first form: one key per field (here environment variables)."""
    fields = {"host": HOST, "database": DATABASE, "username": USER, "warehouse": "LOADING", "role": "LOADER"}
    for name, value in {**fields, **values}.items():
        if value is None:
            monkeypatch.delenv(f"{CREDENTIALS}__{name.upper()}", raising=False)
        else:
            monkeypatch.setenv(f"{CREDENTIALS}__{name.upper()}", value)


def connection_string(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """dlt's second form: the whole credentials as one URL."""
    monkeypatch.setenv(CREDENTIALS, url)


def check_and_run(snowflake: SnowflakeEmulator) -> tuple[list[str], BaseException | None]:
    """What the check reports (missing keys and errors), and how the run ended (None: it loaded)."""
    check = check_pipeline("currencies")
    problems = [*check.missing, *check.errors]
    try:
        currencies_pipeline.run()
    except Exception as exc:
        return problems, exc
    assert snowflake.query("SELECT count(*) FROM RAW.CURRENCIES.CURRENCIES")[0][0] > 0
    return problems, None


def assert_both_accept(snowflake: SnowflakeEmulator) -> None:
    problems, failure = check_and_run(snowflake)
    assert problems == [], problems
    assert failure is None, repr(failure)
    [connect, *_] = snowflake.connect_calls
    assert connect["user"] == USER and connect["account"] == HOST


def assert_both_refuse(snowflake: SnowflakeEmulator, words: str, *secrets_given: str) -> None:
    problems, failure = check_and_run(snowflake)
    assert problems, "the check said ready"
    assert any(words in p for p in problems), problems
    assert isinstance(failure, ConfigurationError), repr(failure)
    assert words in str(failure)
    assert retry_unless_permanent(load_currencies, None, Failed(data=failure)) is False  # type: ignore[arg-type]
    assert snowflake.connect_calls == []  # refused before connecting
    for secret in secrets_given:
        for line in filter(None, (part.strip() for part in secret.splitlines())):
            if "-----" not in line:
                assert line not in str(failure) and all(line not in p for p in problems)


@pytest.mark.parametrize("form", GOOD_KEYS)
def test_every_key_form_is_accepted_by_the_check_and_the_run(
    form: str,
    key: rsa.RSAPrivateKey,
    snowflake: SnowflakeEmulator,
    frankfurter: FrankfurterServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    private_key, passphrase = GOOD_KEYS[form](key)
    separate_keys(monkeypatch, private_key=private_key, private_key_passphrase=passphrase)
    assert_both_accept(snowflake)
    # And dlt connected with the key itself, unencrypted DER, never the passphrase.
    [connect, *_] = snowflake.connect_calls
    assert connect["private_key"] == der(key)
    assert "private_key_passphrase" not in connect


@pytest.mark.parametrize("form", BAD_KEYS)
def test_every_bad_key_is_refused_by_both_naming_the_setting_and_never_retried(
    form: str,
    key: rsa.RSAPrivateKey,
    snowflake: SnowflakeEmulator,
    frankfurter: FrankfurterServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    private_key, passphrase, words = BAD_KEYS[form](key)
    separate_keys(monkeypatch, private_key=private_key, private_key_passphrase=passphrase)
    assert_both_refuse(snowflake, words, private_key, *([passphrase] if passphrase else []))
    assert frankfurter.requests == []  # nothing extracted either


def test_key_pair_in_a_connection_string_is_accepted_by_both(
    key: rsa.RSAPrivateKey,
    snowflake: SnowflakeEmulator,
    frankfurter: FrankfurterServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # dlt's docs: the key in the query string, URL-encoded (base64 has `+`, `/` and `=`).
    url = (
        f"snowflake://{USER}@{HOST}/{DATABASE}?warehouse=LOADING&role=LOADER"
        f"&private_key={quote(wrapped(pem(key, PASSPHRASE)), safe='')}"
        f"&private_key_passphrase={quote(PASSPHRASE, safe='')}"
    )
    connection_string(monkeypatch, url)
    assert_both_accept(snowflake)
    assert snowflake.connect_calls[0]["private_key"] == der(key)


def test_password_in_a_connection_string_and_as_separate_keys_are_accepted_by_both(
    snowflake: SnowflakeEmulator, frankfurter: FrankfurterServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection_string(
        monkeypatch, f"snowflake://{USER}:{PASSWORD}@{HOST}/{DATABASE}?warehouse=LOADING&role=LOADER"
    )
    assert_both_accept(snowflake)
    assert snowflake.connect_calls[0]["password"] == PASSWORD
    monkeypatch.delenv(CREDENTIALS)
    snowflake.connect_calls.clear()
    separate_keys(monkeypatch, password=PASSWORD)
    assert_both_accept(snowflake)


def test_a_key_file_is_accepted_by_both(
    key: rsa.RSAPrivateKey,
    snowflake: SnowflakeEmulator,
    frankfurter: FrankfurterServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # dlt's `private_key_path`; the file as `base64 rsa_key.p8 > key.b64` writes it.
    path = tmp_path / "key.b64"
    path.write_text(wrapped(pem(key, PASSPHRASE)))
    separate_keys(monkeypatch, private_key_path=str(path), private_key_passphrase=PASSPHRASE)
    assert_both_accept(snowflake)
    assert snowflake.connect_calls[0]["private_key"] == der(key)


def test_partial_credentials_are_refused_by_both_naming_the_keys(
    snowflake: SnowflakeEmulator, frankfurter: FrankfurterServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A user but neither a password nor a key: dlt raises its own error at resolve time.
    separate_keys(monkeypatch)
    assert_both_refuse(snowflake, "destination.snowflake.credentials.private_key")
    # No account at all: the missing key is named.
    separate_keys(monkeypatch, host=None, password=PASSWORD)
    assert_both_refuse(snowflake, "destination.snowflake.credentials.host")
