"""Key-pair authentication for SVC_DLT: every accepted form of the key, what the connector gets, clear failures."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import pipelines.currencies as currencies_pipeline
from sandbox.frankfurter import FrankfurterServer
from tests.snowflake.fakesnow_shim import SnowflakeEmulator
from tests.utils.key_pairs import pem
from utils.destinations import check_destination
from utils.errors import ConfigurationError
from utils.snowflake_keys import (
    KEY_SETTING,
    PHRASE_SETTING,
    load_private_key,
    public_key_body,
    public_key_fingerprint,
)

CREDENTIALS = "DESTINATION__SNOWFLAKE__CREDENTIALS__"
PASSWORD = secrets.token_urlsafe(16)  # made up per run for the test key


def der(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


@pytest.fixture
def svc_dlt(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str | None], None]:
    """Set SVC_DLT's Snowflake credentials with the given key (and passphrase), no DLT__DESTINATION."""
    monkeypatch.delenv("DLT__DESTINATION")
    monkeypatch.setenv(f"{CREDENTIALS}HOST", "xy12345.eu-west-1")
    monkeypatch.setenv(f"{CREDENTIALS}DATABASE", "RAW")
    monkeypatch.setenv(f"{CREDENTIALS}USERNAME", "SVC_DLT")
    monkeypatch.setenv(f"{CREDENTIALS}ROLE", "LOADER")
    monkeypatch.setenv(f"{CREDENTIALS}WAREHOUSE", "LOADING")

    def configure(private_key: str, passphrase: str | None) -> None:
        monkeypatch.setenv(f"{CREDENTIALS}PRIVATE_KEY", private_key)
        if passphrase is None:
            monkeypatch.delenv(f"{CREDENTIALS}PRIVATE_KEY_PASSPHRASE", raising=False)
        else:
            monkeypatch.setenv(f"{CREDENTIALS}PRIVATE_KEY_PASSPHRASE", passphrase)

    return configure


FORMS: dict[str, Callable[[rsa.RSAPrivateKey], tuple[str, str | None]]] = {
    "pem": lambda k: (pem(k), None),
    "encrypted pem": lambda k: (pem(k, PASSWORD), PASSWORD),
    "base64 of pem (CI variable)": lambda k: (b64(pem(k)), None),
    "base64 of encrypted pem (CI variable)": lambda k: (b64(pem(k, PASSWORD)), PASSWORD),
    "base64 of der": lambda k: (b64(der(k)), None),
}


@pytest.mark.parametrize("form", FORMS)
def test_the_connector_receives_the_unencrypted_der_key_and_never_the_passphrase(
    form: str, key: rsa.RSAPrivateKey, svc_dlt: Callable[[str, str | None], None]
) -> None:
    svc_dlt(*FORMS[form](key))
    pipeline = currencies_pipeline.pipeline()
    check_destination(pipeline)  # decodes the key before anything is extracted
    client = pipeline.destination_client()
    params = client.config.credentials.to_connector_params()
    assert params["private_key"] == der(key)
    assert "private_key_passphrase" not in params
    assert (params["user"], params["account"], params["database"]) == ("SVC_DLT", "xy12345.eu-west-1", "RAW")
    assert (params["role"], params["warehouse"], params["password"]) == ("LOADER", "LOADING", None)

    # And exactly that reaches `snowflake.connector.connect` when dlt opens its connection.
    emulator = SnowflakeEmulator()
    with emulator.running(), client.sql_client:
        pass
    (call,) = emulator.connect_calls
    assert call["private_key"] == der(key)
    assert "private_key_passphrase" not in call
    assert call["password"] is None
    assert call["user"] == "SVC_DLT"


def wrong_key_cases(key: rsa.RSAPrivateKey) -> dict[str, tuple[str, str | None, str]]:
    other = ec.generate_private_key(ec.SECP256R1())
    ec_pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    text = pem(key)
    return {
        "wrong passphrase": (
            pem(key, PASSWORD),
            "not the passphrase",
            f"{PHRASE_SETTING} does not decrypt {KEY_SETTING}",
        ),
        "wrong passphrase, base64": (
            b64(pem(key, PASSWORD)),
            "nope",
            f"{PHRASE_SETTING} does not decrypt",
        ),
        "no passphrase": (
            pem(key, PASSWORD),
            None,
            f"{KEY_SETTING} is encrypted but {PHRASE_SETTING} is not set",
        ),
        "passphrase for a plain key": (
            text,
            PASSWORD,
            f"{PHRASE_SETTING} is set but {KEY_SETTING} is not encrypted",
        ),
        "truncated": (text[:300] + "\n-----END PRIVATE KEY-----\n", None, f"{KEY_SETTING} cannot be decoded"),
        "escaped newlines": (text.replace("\n", "\\n"), None, "literal '\\n' instead of line breaks"),
        "not a key": ("please-fill-me-in", None, f"{KEY_SETTING} is neither a PEM private key nor base64"),
        "an EC key": (ec_pem, None, f"{KEY_SETTING} is not an RSA key (EC key)"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "wrong passphrase",
        "wrong passphrase, base64",
        "no passphrase",
        "passphrase for a plain key",
        "truncated",
        "escaped newlines",
        "not a key",
        "an EC key",
    ],
)
def test_a_bad_key_fails_before_extraction_naming_the_setting_never_the_key(
    case: str,
    key: rsa.RSAPrivateKey,
    svc_dlt: Callable[[str, str | None], None],
    frankfurter: FrankfurterServer,
) -> None:
    private_key, passphrase, words = wrong_key_cases(key)[case]
    svc_dlt(private_key, passphrase)
    with pytest.raises(ConfigurationError) as raised:
        currencies_pipeline.run()
    message = str(raised.value)
    assert words in message
    assert frankfurter.requests == []  # nothing was extracted
    body_lines = [line for line in private_key.replace("\\n", "\n").splitlines() if "-----" not in line]
    assert not [line for line in body_lines if line and line in message]
    assert private_key not in message
    if passphrase:
        assert passphrase not in message
    assert raised.value.__cause__ is None


def test_public_key_for_snowflake_and_its_fingerprint(key: rsa.RSAPrivateKey) -> None:
    loaded = load_private_key(pem(key, PASSWORD), PASSWORD)
    body = public_key_body(loaded)
    public = serialization.load_der_public_key(base64.b64decode(body))
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.public_numbers() == key.public_key().public_numbers()
    # What `DESC USER SVC_DLT` shows as RSA_PUBLIC_KEY_FP.
    digest = hashlib.sha256(base64.b64decode(body)).digest()
    assert public_key_fingerprint(loaded) == "SHA256:" + base64.b64encode(digest).decode()
