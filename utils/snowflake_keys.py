"""Snowflake key-pair authentication for `SVC_DLT`: checking the private key before a load; the public key.

dlt's Snowflake destination reads `destination.snowflake.credentials.private_key` (and
`private_key_passphrase` when the key is encrypted) and hands the connector the key as unencrypted
PKCS#8 DER bytes; the passphrase itself never reaches the connector. The key may be given as

* the PEM text (a PKCS#8 `BEGIN ... KEY` block, encrypted or not), as in `.dlt/secrets.toml` or a
  JSON secret (with its line breaks escaped, as JSON does);
* base64 of the whole PEM file, header lines included (`base64 -w0 rsa_key.p8`) - one line, for CI
  variables that mangle newlines;
* base64 of the DER key.

dlt decodes the key only when it connects, strictly (a trailing newline, or the 76-column lines
of plain `base64 rsa_key.p8`, make it fail with "Could not decode private key"), and its error names
neither the setting nor the cause in words a person acts on. So the key is read once, here, by
`normalise_credentials`: it decodes every form above (whitespace in base64 ignored), fails naming
the setting - never printing any part of the key or the passphrase - and puts the key back into the
credentials as canonical PKCS#8 PEM (still encrypted with the passphrase when there is one), which
dlt's decoder always reads. `./dev check-config` and every run call it through
`utils.destinations.prepare_destination`, and the run hands dlt those normalised credentials: the
check and the run read the key by one code path, so they cannot disagree.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from dlt.common.libs.cryptography import is_pem

from utils.errors import ConfigurationError

KEY_SETTING = "destination.snowflake.credentials.private_key"
PHRASE_SETTING = "destination.snowflake.credentials.private_key_passphrase"


def load_private_key(private_key: str, passphrase: str | None = None) -> RSAPrivateKey:
    """Decode a Snowflake private key as dlt does, with errors that name the setting at fault.

    Args:
        private_key: PEM text, base64 of the PEM, or base64 of the DER key.
        passphrase: The key's passphrase; None (or empty) for an unencrypted key.

    Returns:
        The RSA private key.

    Raises:
        ConfigurationError: The key is malformed, encrypted without a passphrase, not decrypted
            by the passphrase, unencrypted with a passphrase given, or not an RSA key. The message
            names `destination.snowflake.credentials.private_key` (or `..._passphrase`) and never
            contains the key or the passphrase.
    """
    password = passphrase.encode() if passphrase else None
    blob = _key_bytes(private_key)
    loaded: PrivateKeyTypes | None = None
    errors: list[Exception] = []
    for load in (serialization.load_der_private_key, serialization.load_pem_private_key):
        try:
            loaded = load(blob, password=password)
            break
        except (TypeError, ValueError) as exc:  # cryptography: wrong type / bad data / bad password
            errors.append(exc)
    if loaded is None:
        raise _decode_error(blob, password is not None, errors) from None
    if not isinstance(loaded, RSAPrivateKey):
        kind = type(loaded).__name__.removeprefix("_").removesuffix("PrivateKey") or "another kind of"
        raise ConfigurationError(
            f"{KEY_SETTING} is not an RSA key ({kind} key); Snowflake key-pair authentication needs "
            "an RSA key of 2048 bits or more."
        )
    return loaded


def _key_bytes(private_key: str) -> bytes:
    text = private_key.strip()
    if not text:
        raise ConfigurationError(f"{KEY_SETTING} is empty.")
    if is_pem(text):
        return text.encode("ascii", errors="replace")
    if "-----BEGIN" in text:
        if "\\n" in text:
            hint = (
                " It contains a literal '\\n' instead of line breaks: put the PEM in .dlt/secrets.toml "
                "as a multi-line string, or give base64 of the whole PEM file (base64 -w0 rsa_key.p8)."
            )
        elif "Proc-Type:" in text:
            hint = (
                " It is a traditional OpenSSL-encrypted key (Proc-Type header), which the Snowflake "
                "destination does not read: convert it to PKCS#8 with "
                "`openssl pkcs8 -topk8 -v2 aes-256-cbc -in old_key.pem -out rsa_key.p8`."
            )
        else:
            hint = " The BEGIN/END lines or the base64 body between them are damaged."
        raise ConfigurationError(f"{KEY_SETTING} looks like PEM but cannot be read.{hint}")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(
            f"{KEY_SETTING} is neither a PEM private key nor base64 (of the PEM file or of the DER "
            "key). Give the PEM text, or `base64 -w0 rsa_key.p8` for a CI variable."
        ) from None


def _decode_error(blob: bytes, has_password: bool, errors: list[Exception]) -> ConfigurationError:
    messages = " ".join(str(e) for e in errors).lower()
    encrypted = b"ENCRYPTED" in blob or "password was not given" in messages
    if "password was not given" in messages or (encrypted and not has_password):
        return ConfigurationError(
            f"{KEY_SETTING} is encrypted but {PHRASE_SETTING} is not set; set the passphrase the key "
            "was encrypted with."
        )
    if "password was given but private key is not encrypted" in messages:
        return ConfigurationError(
            f"{PHRASE_SETTING} is set but {KEY_SETTING} is not encrypted; remove the passphrase."
        )
    if has_password and encrypted:
        return ConfigurationError(
            f"{PHRASE_SETTING} does not decrypt {KEY_SETTING} (wrong passphrase, or a different key)."
        )
    return ConfigurationError(
        f"{KEY_SETTING} cannot be decoded as a private key (PKCS#8 PEM or DER, encrypted or not). "
        "Generate it with `openssl genrsa 2048 | openssl pkcs8 -topk8 -v2 aes-256-cbc -out rsa_key.p8`."
    )


def normalise_private_key(private_key: str, passphrase: str | None = None) -> str:
    """The key as canonical PKCS#8 PEM, encrypted with `passphrase` when one is given.

    Args:
        private_key: Any form `load_private_key` reads.
        passphrase: The key's passphrase; None (or empty) for an unencrypted key.

    Returns:
        PEM text that dlt's strict decoder reads with the same passphrase.

    Raises:
        ConfigurationError: See `load_private_key`.
    """
    key = load_private_key(private_key, passphrase)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode("ascii")


def normalise_credentials(credentials: Any) -> bool:
    """Read the key of Snowflake key-pair credentials and put it back in the form dlt reads.

    The one code path by which both `./dev check-config` and a run read the key (through
    `utils.destinations.prepare_destination`). A key read from `private_key_path` is read from the
    file by dlt first; afterwards the credentials carry the key itself, so dlt does not read the
    file again.

    Args:
        credentials: Resolved credentials of any destination; only Snowflake's with a
            `private_key` are changed.

    Returns:
        True when the credentials carry a Snowflake key (now normalised), False otherwise.

    Raises:
        ConfigurationError: See `load_private_key`.
    """
    private_key = getattr(credentials, "private_key", None)
    if getattr(credentials, "drivername", None) != "snowflake" or not private_key:
        return False
    passphrase = getattr(credentials, "private_key_passphrase", None) or None
    credentials.private_key = normalise_private_key(str(private_key), passphrase)
    credentials.private_key_passphrase = passphrase
    credentials.private_key_path = None
    return True


def check_private_key(credentials: Any) -> None:
    """Check the key pair of Snowflake credentials if they use one (see `normalise_credentials`).

    Args:
        credentials: Resolved credentials of any destination.

    Raises:
        ConfigurationError: See `load_private_key`.
    """
    normalise_credentials(credentials)


def public_key_body(private_key: RSAPrivateKey) -> str:
    """The value for `ALTER USER ... SET RSA_PUBLIC_KEY`: base64 DER of the public key, one line."""
    der = private_key.public_key().public_bytes(
        encoding=serialization.Encoding.DER, format=serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode("ascii")


def public_key_fingerprint(private_key: RSAPrivateKey) -> str:
    """`SHA256:<base64>`, as Snowflake shows in `DESC USER ...` (`RSA_PUBLIC_KEY_FP`)."""
    der = base64.b64decode(public_key_body(private_key))
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")
