"""Snowflake objects kept as code under `snowflake/`: print the SQL, or apply it through the connector.

    python -m utils.snowflake_sql print snowflake/exchange_rates
    python -m utils.snowflake_sql apply snowflake/exchange_rates
    python -m utils.snowflake_sql apply snowflake            # every folder, in path order
    python -m utils.snowflake_sql apply snowflake/account --var SVC_DLT_RSA_PUBLIC_KEY=@rsa_key.pub ...

A path is a `.sql` file or a folder; a folder means every `.sql` file below it, in path order, so
files are numbered (`01_schema.sql`, `02_file_format.sql`, ...) to say what must exist first. The
statements must be idempotent (`CREATE ... IF NOT EXISTS`, or `CREATE OR REPLACE` where replacing
loses nothing): `apply` runs all of them every time.

Values that differ per account (public keys, IAM role ARNs) are written as SnowSQL variables,
`'&{NAME}'` inside a string literal, and given with `--var NAME=VALUE` (`--var NAME=@file` reads a
file; for a PEM public key, its base64 body). `print` fills in the variables it is given and leaves
the others, so its output also runs in SnowSQL with variable substitution; `apply` refuses to start
while any variable has no value.

Statements are split with sqlglot's Snowflake tokenizer, so a `;` inside a string, a comment or a
`$$` block never ends a statement, and each statement is sent exactly as written (sqlglot does not
understand every Snowflake command, e.g. `CREATE PIPE`, so nothing is re-generated from its parse).
`apply` connects with the same credentials as dlt's Snowflake destination
(`destination.snowflake.credentials` in `.dlt/secrets.toml`, environment variables or the AWS
Secrets Manager provider) and stops at the first statement that fails, naming its file and line.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt
from dlt.common.configuration import with_config
from dlt.common.configuration.exceptions import (
    ConfigFieldMissingException,
    ConfigurationValueError,
)
from dlt.destinations.impl.snowflake.configuration import SnowflakeCredentials
from sqlglot import Token, TokenType
from sqlglot.dialects.snowflake import Snowflake
from sqlglot.errors import TokenError

from utils.destinations import missing_destination_keys
from utils.errors import ConfigurationError, PipelineError

REPO_ROOT = Path(__file__).resolve().parents[1]
# Where the repository keeps its Snowflake objects, one folder per pipeline.
SQL_ROOT = REPO_ROOT / "snowflake"
SQL_SUFFIX = ".sql"
# A SnowSQL variable reference, `&{NAME}`.
PLACEHOLDER = re.compile(r"&\{([A-Za-z_][A-Za-z0-9_]*)\}")


class SqlApplyError(PipelineError):
    """A statement failed in Snowflake; the statements before it were applied."""


@dataclass(frozen=True)
class Statement:
    """One SQL statement from a file under `snowflake/`.

    Attributes:
        path: The file it comes from.
        line: Line of the file where the statement starts (1-based).
        text: The statement as written, comments before it and the final `;` left out.
    """

    path: Path
    line: int
    text: str

    @property
    def location(self) -> str:
        """`file:line`, relative to the repository when the file is inside it."""
        return f"{_display_path(self.path)}:{self.line}"

    @property
    def summary(self) -> str:
        """The statement's first line, for messages."""
        return self.text.splitlines()[0].strip()


def sql_files(path: Path) -> list[Path]:
    """Return the `.sql` files a path stands for, in the order they are applied.

    Args:
        path: A `.sql` file, or a folder searched recursively.

    Returns:
        The file itself, or every `.sql` file below the folder sorted by relative path.

    Raises:
        ConfigurationError: The path does not exist, is not a `.sql` file, or holds no `.sql` file.
    """
    if path.is_file():
        if path.suffix != SQL_SUFFIX:
            raise ConfigurationError(f"{_display_path(path)} is not a {SQL_SUFFIX} file.")
        return [path]
    if path.is_dir():
        files = sorted(
            (p for p in path.rglob(f"*{SQL_SUFFIX}") if p.is_file()), key=lambda p: p.relative_to(path).parts
        )
        if not files:
            raise ConfigurationError(f"{_display_path(path)} holds no {SQL_SUFFIX} files.")
        return files
    raise ConfigurationError(f"{_display_path(path)} does not exist; give a {SQL_SUFFIX} file or a folder.")


def split_statements(sql: str) -> list[tuple[int, str]]:
    """Split SQL text into statements with sqlglot's Snowflake tokenizer.

    Args:
        sql: The contents of a `.sql` file.

    Returns:
        `(line, text)` per statement: the 1-based line it starts on and its text from its first
        token to its last, without the `;`. Empty statements and bare comments are left out.

    Raises:
        ConfigurationError: The text cannot be tokenised (e.g. an unterminated string).
    """
    try:
        tokens = Snowflake().tokenize(sql)
    except TokenError as exc:
        raise ConfigurationError(f"SQL cannot be split into statements: {exc}") from exc
    statements: list[tuple[int, str]] = []
    current: list[Token] = []
    for token in [*tokens, None]:
        if token is None or token.token_type == TokenType.SEMICOLON:
            if current:
                start, end = current[0].start, current[-1].end
                statements.append((sql.count("\n", 0, start) + 1, sql[start : end + 1]))
            current = []
        else:
            current.append(token)
    return statements


def load_statements(paths: Iterable[Path]) -> list[Statement]:
    """Read and split every `.sql` file the paths stand for.

    Args:
        paths: Files or folders, see `sql_files`.

    Returns:
        The statements in the order they are applied.

    Raises:
        ConfigurationError: A path is not usable, or a file cannot be split into statements.
    """
    statements: list[Statement] = []
    for path in paths:
        for file in sql_files(path):
            try:
                parts = split_statements(file.read_text(encoding="utf-8"))
            except ConfigurationError as exc:
                raise ConfigurationError(f"{_display_path(file)}: {exc}") from exc
            statements += [Statement(file, line, text) for line, text in parts]
    return statements


def placeholders(statements: Sequence[Statement]) -> list[str]:
    """Names of the `&{NAME}` variables the statements use, sorted."""
    return sorted({name for s in statements for name in PLACEHOLDER.findall(s.text)})


def substitute(statements: Sequence[Statement], variables: Mapping[str, str]) -> list[Statement]:
    """Fill in `&{NAME}` variables; the ones without a value are left as they are.

    Args:
        statements: From `load_statements`.
        variables: Name to value. Values are escaped for a single-quoted SQL string literal, where
            the variables are written.

    Returns:
        The statements with the variables replaced.
    """

    def value(match: re.Match[str]) -> str:
        name = match[1]
        if name not in variables:
            return match[0]
        return variables[name].replace("\\", "\\\\").replace("'", "''")

    return [Statement(s.path, s.line, PLACEHOLDER.sub(value, s.text)) for s in statements]


def parse_variable(text: str) -> tuple[str, str]:
    """Parse a `--var NAME=VALUE` argument; `NAME=@path` reads the value from a file.

    A PEM file (a public key, `-----BEGIN PUBLIC KEY-----`) gives its base64 body on one line,
    which is what `RSA_PUBLIC_KEY` takes.

    Raises:
        ConfigurationError: Not `NAME=VALUE`, or the file cannot be read.
    """
    name, sep, value = text.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ConfigurationError(f"--var {text!r}: expected NAME=VALUE or NAME=@file.")
    if value.startswith("@"):
        try:
            value = Path(value[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"--var {name}: cannot read {value[1:]}: {exc.strerror}.") from None
        if "-----BEGIN" in value:
            value = "".join(line.strip() for line in value.splitlines() if line and "-----" not in line)
        value = value.strip()
    return name, value


def render(statements: Sequence[Statement]) -> str:
    """Format statements as one SQL script, each preceded by a comment naming its file and line.

    Args:
        statements: From `load_statements`.

    Returns:
        The script, ready to paste into a Snowflake worksheet.
    """
    return "\n\n".join(f"-- {s.location}\n{s.text};" for s in statements) + "\n"


@with_config(sections=("destination", "snowflake"))
def snowflake_credentials(credentials: SnowflakeCredentials = dlt.secrets.value) -> SnowflakeCredentials:
    """Resolve `destination.snowflake.credentials` through dlt, exactly as the Snowflake destination does.

    Args:
        credentials: Injected by dlt from `destination.snowflake.credentials`.

    Returns:
        The resolved credentials.
    """
    return credentials


def connect() -> Any:
    """Open a Snowflake connection with dlt's Snowflake destination credentials.

    Returns:
        A `snowflake.connector` connection (typed `Any`: the connector ships no stubs here).

    Raises:
        ConfigurationError: A credential is missing; the message names the keys, never a value.
    """
    # Imported here: printing SQL must not need the connector.
    import snowflake.connector

    try:
        credentials = snowflake_credentials()
    except ConfigFieldMissingException as exc:
        missing = missing_destination_keys(exc, "snowflake")
        raise ConfigurationError(
            f"Cannot connect to Snowflake: missing {missing.keys}. Put {missing.pronoun} in "
            f".dlt/secrets.toml (see .dlt/secrets.toml.example), set {missing.variables}, or enable "
            "the AWS Secrets Manager provider."
        ) from None
    except ConfigurationValueError as exc:
        # dlt's own message names the fields (e.g. a password missing for password authentication).
        raise ConfigurationError(
            f"Cannot connect to Snowflake: {exc} Put them in .dlt/secrets.toml (see "
            ".dlt/secrets.toml.example), set the matching DESTINATION__SNOWFLAKE__CREDENTIALS__* "
            "environment variables, or enable the AWS Secrets Manager provider."
        ) from None
    try:
        return snowflake.connector.connect(**credentials.to_connector_params())
    except snowflake.connector.errors.Error as exc:
        # The run engine's rules, imported only when needed.
        from utils.run_engine.destination_failures import snowflake_login_refused, snowflake_unreachable

        refused = snowflake_login_refused(exc, "Applying the SQL failed")
        if refused is not None:
            raise refused from None
        cannot = snowflake_unreachable(exc, "Applying the SQL failed", "Nothing was applied; run it again.")
        if cannot is not None:
            raise cannot from exc
        raise


def apply(statements: Sequence[Statement], connection: Any) -> int:
    """Execute statements in order on an open connection, stopping at the first failure.

    Args:
        statements: From `load_statements`.
        connection: A `snowflake.connector` connection (or a compatible fake).

    Returns:
        How many statements ran.

    Raises:
        SqlApplyError: A statement failed; the message names its file, line and first line. The
            statements before it stay applied (DDL commits by itself in Snowflake).
    """
    cursor = connection.cursor()
    try:
        for count, statement in enumerate(statements):
            try:
                cursor.execute(statement.text)
            except Exception as exc:
                raise SqlApplyError(
                    f"{statement.location}: `{statement.summary}` failed after {count} statement(s) "
                    f"were applied: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}"
                ) from exc
    finally:
        cursor.close()
    return len(statements)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit code.

    Args:
        argv: Arguments without the program name; `sys.argv[1:]` when None.
    """
    parser = argparse.ArgumentParser(
        prog="python -m utils.snowflake_sql",
        description="Print or apply the Snowflake SQL kept under snowflake/.",
    )
    parser.add_argument("command", choices=("print", "apply"), help="print the SQL, or run it in Snowflake")
    parser.add_argument(
        "paths", nargs="+", type=Path, help=".sql files or folders (e.g. snowflake/exchange_rates)"
    )
    parser.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="value of a &{NAME} variable; NAME=@file reads it from a file (repeatable)",
    )
    args = parser.parse_args(argv)
    try:
        variables = dict(parse_variable(text) for text in args.var)
        statements = substitute(load_statements(args.paths), variables)
        if args.command == "print":
            sys.stdout.write(render(statements))
            return 0
        unset = placeholders(statements)
        if unset:
            raise ConfigurationError(
                "no value for "
                + ", ".join(f"&{{{name}}}" for name in unset)
                + "; give "
                + " ".join(f"--var {name}=..." for name in unset)
                + " (nothing was applied)."
            )
        connection = connect()
        try:
            applied = apply(statements, connection)
        finally:
            connection.close()
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"applied {applied} statement(s) from {', '.join(str(p) for p in args.paths)}")
    return 0


def _display_path(path: Path) -> str:
    resolved = path.resolve()
    return str(resolved.relative_to(REPO_ROOT)) if resolved.is_relative_to(REPO_ROOT) else str(path)


if __name__ == "__main__":
    sys.exit(main())
