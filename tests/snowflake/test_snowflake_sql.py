"""utils.snowflake_sql: splitting, ordering, printing and applying the SQL kept under snowflake/."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import snowflake.connector

from utils import snowflake_sql
from utils.errors import ConfigurationError
from utils.snowflake_sql import SqlApplyError, apply, load_statements, render, split_statements, sql_files

pytestmark = pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result")

CREDENTIALS = "DESTINATION__SNOWFLAKE__CREDENTIALS__"


@pytest.fixture
def no_snowflake_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No .dlt/secrets.toml from a developer's checkout, no credentials in the environment."""
    monkeypatch.chdir(tmp_path)
    for name in ("HOST", "DATABASE", "USERNAME", "PASSWORD", "PRIVATE_KEY"):
        monkeypatch.delenv(f"{CREDENTIALS}{name}", raising=False)


@pytest.fixture
def fake_snowflake(monkeypatch: pytest.MonkeyPatch, no_snowflake_config: None) -> Iterator[None]:
    import fakesnow

    monkeypatch.setenv(f"{CREDENTIALS}HOST", "fake-account")
    monkeypatch.setenv(f"{CREDENTIALS}DATABASE", "RAW")
    monkeypatch.setenv(f"{CREDENTIALS}USERNAME", "SVC_DLT")
    monkeypatch.setenv(f"{CREDENTIALS}PASSWORD", secrets.token_hex(8))  # made up per run
    with fakesnow.patch():
        yield


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_split_ignores_semicolons_in_strings_comments_and_dollar_blocks() -> None:
    sql = (
        "-- leading comment; not a statement\n"
        "select 'a;b' as x; -- trailing; comment\n"
        "/* block; comment */\n"
        "create function f() returns int language sql as $$ select 1; $$;\n"
        ";;\n"
        "select $1:date::date from @stage"
    )
    assert split_statements(sql) == [
        (2, "select 'a;b' as x"),
        (4, "create function f() returns int language sql as $$ select 1; $$"),
        (6, "select $1:date::date from @stage"),
    ]


def test_split_of_comments_only_is_empty() -> None:
    assert split_statements("-- nothing here;\n/* ; */\n") == []


def test_unterminated_string_is_a_configuration_error(tmp_path: Path) -> None:
    write(tmp_path, "bad.sql", "select 'oops;\n")
    with pytest.raises(ConfigurationError, match=r"bad\.sql: SQL cannot be split"):
        load_statements([tmp_path])


def test_folder_means_every_sql_file_below_it_in_path_order(tmp_path: Path) -> None:
    write(tmp_path, "b/01_x.sql", "select 3;")
    write(tmp_path, "a/02_y.sql", "select 2;")
    write(tmp_path, "a/01_z.sql", "select 1; select 1.5;")
    write(tmp_path, "a/notes.md", "not sql")
    assert [p.relative_to(tmp_path).as_posix() for p in sql_files(tmp_path)] == [
        "a/01_z.sql",
        "a/02_y.sql",
        "b/01_x.sql",
    ]
    assert [s.text for s in load_statements([tmp_path])] == ["select 1", "select 1.5", "select 2", "select 3"]


@pytest.mark.parametrize(
    ("name", "message"),
    [("missing", "does not exist"), ("notes.md", "is not a .sql file"), ("empty", "no .sql")],
)
def test_unusable_paths_are_refused(tmp_path: Path, name: str, message: str) -> None:
    write(tmp_path, "notes.md", "x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigurationError, match=message):
        sql_files(tmp_path / name)


def test_print_shows_every_statement_with_its_file_and_line(capsys: pytest.CaptureFixture[str]) -> None:
    root = snowflake_sql.SQL_ROOT
    assert snowflake_sql.main(["print", str(root / "exchange_rates")]) == 0
    out = capsys.readouterr().out
    statements = load_statements([root / "exchange_rates"])
    assert out == render(statements)
    assert out.count(";\n") == len(statements) == 5
    assert "-- snowflake/exchange_rates/05_pipe.sql:8\nCREATE PIPE IF NOT EXISTS" in out
    # The whole tree prints too (later pipelines add folders beside exchange_rates/).
    assert snowflake_sql.main(["print", str(root)]) == 0
    assert "CREATE PIPE" in capsys.readouterr().out


def test_apply_without_credentials_names_the_missing_keys(
    no_snowflake_config: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write(tmp_path, "01.sql", "create schema if not exists S;")
    assert snowflake_sql.main(["apply", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "destination.snowflake.credentials.host" in err
    assert "destination.snowflake.credentials.database" in err
    assert ".dlt/secrets.toml" in err
    # dlt asks for the login keys only once host and database resolve: named in the same message.
    assert "destination.snowflake.credentials.username and either" in err, err
    assert "destination.snowflake.credentials.private_key (key-pair authentication" in err


def test_apply_to_an_unreachable_snowflake_is_one_line_naming_the_host_setting(
    no_snowflake_config: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    password = secrets.token_hex(8)  # made up per run; must never be shown
    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv(f"{CREDENTIALS}HOST", "xy12345.eu-west-1")
    monkeypatch.setenv(f"{CREDENTIALS}DATABASE", "RAW")
    monkeypatch.setenv(f"{CREDENTIALS}USERNAME", "SVC_DLT")
    monkeypatch.setenv(f"{CREDENTIALS}PASSWORD", password)
    monkeypatch.setenv(
        f"{CREDENTIALS}QUERY",
        f'{{"host": "127.0.0.1", "port": {port}, "protocol": "http", "login_timeout": 5}}',
    )
    write(tmp_path / "sql", "01.sql", "create schema if not exists S;")

    assert snowflake_sql.main(["apply", str(tmp_path / "sql")]) == 1

    err = capsys.readouterr().err
    assert err.startswith(
        "error: Applying the SQL failed: cannot connect to Snowflake (Connection refused)"
    ), err
    assert "destination.snowflake.credentials.host" in err
    assert "Nothing was applied" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert password not in err


def test_apply_runs_every_statement_through_the_connector(
    fake_snowflake: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write(tmp_path, "01_schema.sql", "create schema if not exists S;")
    write(
        tmp_path,
        "02_table.sql",
        "create table if not exists S.T (x int, note varchar);\ninsert into S.T values (1, 'a;b');",
    )
    assert snowflake_sql.main(["apply", str(tmp_path)]) == 0
    assert "applied 3 statement(s)" in capsys.readouterr().out
    connection = snowflake.connector.connect(database="RAW")
    assert connection.cursor().execute("select x, note from S.T").fetchall() == [(1, "a;b")]


def test_apply_stops_at_the_first_failure_and_names_it(fake_snowflake: None, tmp_path: Path) -> None:
    write(
        tmp_path,
        "01.sql",
        "create schema if not exists S;\n\ncreate table S.T (x int);\nselect nonsense from;\n",
    )
    write(tmp_path, "02.sql", "create table S.NEVER (x int);")
    connection: Any = snowflake.connector.connect(database="RAW")
    with pytest.raises(SqlApplyError, match=r"01\.sql:4: `select nonsense from;?` failed after 2 statement"):
        apply(load_statements([tmp_path]), connection)
    tables = connection.cursor().execute("show tables in schema S").fetchall()
    assert [row[1] for row in tables] == ["T"]
