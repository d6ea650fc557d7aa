"""Snowflake objects kept as code under `snowflake/`: print the SQL, or apply it through the connector.

    python -m utils.snowflake_sql print snowflake/exchange_rates
    python -m utils.snowflake_sql apply snowflake/exchange_rates
    python -m utils.snowflake_sql apply snowflake            # every folder, in path order

A path is a `.sql` file or a folder; a folder means every `.sql` file below it, in path order, so
files are numbered (`01_schema.sql`, `02_file_format.sql`, ...) to say what must exist first. The
statements must be idempotent (`CREATE ... IF NOT EXISTS`, or `CREATE OR REPLACE` where replacing
loses nothing): `apply` runs all of them every time.

Statements are split with sqlglot's Snowflake tokenizer, so a `;` inside a string, a comment or a
`$$` block never ends a statement, and each statement is sent exactly as written (sqlglot does not
understand every Snowflake command, e.g. `CREATE PIPE`, so nothing is re-generated from its parse).
`apply` connects with the same credentials as dlt's Snowflake destination
(`destination.snowflake.credentials` in `.dlt/secrets.toml`, environment variables or the AWS
Secrets Manager provider) and stops at the first statement that fails, naming its file and line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt
from dlt.common.configuration import with_config
from dlt.common.configuration.exceptions import (
    ConfigFieldMissingException,
    ConfigurationValueError,
    LookupTraces,
)
from dlt.destinations.impl.snowflake.configuration import SnowflakeCredentials
from sqlglot import Token, TokenType
from sqlglot.dialects.snowflake import Snowflake
from sqlglot.errors import TokenError

from utils.errors import ConfigurationError, PipelineError

REPO_ROOT = Path(__file__).resolve().parents[1]
# Where the repository keeps its Snowflake objects, one folder per pipeline.
SQL_ROOT = REPO_ROOT / "snowflake"
SQL_SUFFIX = ".sql"


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

    where = (
        "Put them in .dlt/secrets.toml (see .dlt/secrets.toml.example), set the matching "
        "DESTINATION__SNOWFLAKE__CREDENTIALS__* environment variables, or enable the AWS Secrets "
        "Manager provider."
    )
    try:
        credentials = snowflake_credentials()
    except ConfigFieldMissingException as exc:
        missing = ", ".join(_missing_keys(exc.traces, "destination.snowflake"))
        raise ConfigurationError(f"Cannot connect to Snowflake: missing {missing}. {where}") from None
    except ConfigurationValueError as exc:
        # dlt's own message names the fields (e.g. a password missing for password authentication).
        raise ConfigurationError(f"Cannot connect to Snowflake: {exc} {where}") from None
    return snowflake.connector.connect(**credentials.to_connector_params())


def _missing_keys(traces: dict[str, Any], path: str) -> list[str]:
    # Nested specs (the credentials inside the destination section) report their own missing fields.
    keys: list[str] = []
    for name, field_traces in traces.items():
        nested = [t for t in field_traces if isinstance(t, LookupTraces)]
        if nested:
            for trace in nested:
                keys += _missing_keys(trace.traces, f"{path}.{name}")
        else:
            keys.append(f"{path}.{name}")
    return sorted(set(keys))


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
    args = parser.parse_args(argv)
    try:
        statements = load_statements(args.paths)
        if args.command == "print":
            sys.stdout.write(render(statements))
            return 0
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
