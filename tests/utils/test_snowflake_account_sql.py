"""snowflake/account/: the Snowflake objects the pipelines need, as idempotent, least-privilege DDL.

Every statement is parsed with sqlglot's Snowflake dialect. sqlglot 30 has no grammar for some
Snowflake commands (CREATE ROLE, CREATE USER, ALTER USER, GRANT ROLE, grants ON ALL / FUTURE
TABLES, CREATE SCHEMA ... WITH MANAGED ACCESS): it falls back to a generic `Command` for those, so
they are checked against exact patterns here instead.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel

from utils.check import pipeline_names
from utils.environments import load_environment
from utils.errors import ConfigurationError
from utils.snowflake_sql import (
    SQL_ROOT,
    Statement,
    load_statements,
    main,
    parse_variable,
    placeholders,
    render,
    substitute,
)

ACCOUNT = SQL_ROOT / "account"
ADMIN_ROLES = {"USERADMIN", "SYSADMIN", "SECURITYADMIN", "ACCOUNTADMIN"}
LOADERS = {"LOADER": "RAW", "LOADER_CI": "RAW_CI"}
# Statements sqlglot parses only as `Command`, each with the one shape allowed here.
COMMAND_SHAPES = [
    re.compile(r"CREATE ROLE IF NOT EXISTS \w+ COMMENT = '[^']*'"),
    re.compile(
        r"CREATE USER IF NOT EXISTS \w+ TYPE = SERVICE DEFAULT_ROLE = \w+ DEFAULT_WAREHOUSE = \w+ DEFAULT_NAMESPACE = \w+ COMMENT = '[^']*'"
    ),
    re.compile(r"ALTER USER \w+ SET RSA_PUBLIC_KEY = '&\{\w+\}'"),
    re.compile(r"GRANT ROLE \w+ TO (ROLE|USER) \w+"),
    re.compile(r"GRANT SELECT ON (ALL|FUTURE) TABLES IN SCHEMA RAW\.\w+ TO ROLE READER"),
    re.compile(r"CREATE SCHEMA IF NOT EXISTS \w+\.\w+ WITH MANAGED ACCESS COMMENT = '[^']*'"),
]


def pipeline_datasets() -> set[str]:
    """The datasets the pipelines declare, as Snowflake schemas (dlt upper-cases them)."""
    return {importlib.import_module(f"pipelines.{name}").DATASET_NAME.upper() for name in pipeline_names()}


def integrations(statements: list[Statement]) -> list[str]:
    """Names of the storage integrations the account DDL creates (one per Snowpipe pipeline)."""
    text = "\n".join(map(one_line, statements))
    return sorted(re.findall(r"CREATE STORAGE INTEGRATION IF NOT EXISTS (\w+)", text))


@pytest.fixture(scope="module")
def statements() -> list[Statement]:
    return load_statements([ACCOUNT])


def one_line(statement: Statement) -> str:
    return " ".join(statement.text.split())


def parse(statement: Statement) -> exp.Expr:
    return sqlglot.parse_one(statement.text, read="snowflake", error_level=ErrorLevel.RAISE)


def grants(statements: list[Statement]) -> list[exp.Grant]:
    return [g for g in (parse(s) for s in statements) if isinstance(g, exp.Grant)]


def principal(grant: exp.Grant) -> str:
    (who,) = grant.args["principals"]
    return str(who.this.name)


def securable(grant: exp.Grant) -> str:
    table = grant.args["securable"]
    return ".".join(part for part in (table.db, table.name) if part)


def privileges(grant: exp.Grant) -> set[str]:
    return {p.this.name.upper() for p in grant.args["privileges"]}


def test_every_statement_parses_in_the_snowflake_dialect(statements: list[Statement]) -> None:
    assert len(statements) > 60
    commands = []
    for statement in statements:
        parsed = parse(statement)
        if isinstance(parsed, exp.Command):
            commands.append(statement)
            assert any(shape.fullmatch(one_line(statement)) for shape in COMMAND_SHAPES), statement.location
    # The rest parse into real expressions: warehouse, databases, grants, integration, USE ROLE.
    parsed_kinds = {type(parse(s)).__name__ for s in statements if s not in commands}
    assert parsed_kinds == {"Use", "Create", "Grant"}


def test_idempotent_each_file_runs_as_a_named_admin_role(statements: list[Statement]) -> None:
    files = sorted({s.path for s in statements})
    assert [f.name for f in files] == [
        "01_roles.sql",
        "02_warehouse.sql",
        "03_databases.sql",
        "04_users.sql",
        "05_grants.sql",
        "06_storage_integration.sql",
    ]
    for file in files:
        first = next(s for s in statements if s.path == file)
        use = parse(first)
        assert isinstance(use, exp.Use) and use.this.name in ADMIN_ROLES, file
    for statement in statements:
        text = one_line(statement).upper()
        assert not text.startswith(("DROP", "CREATE OR REPLACE", "REVOKE", "TRUNCATE", "DELETE")), (
            statement.location
        )
        if text.startswith("CREATE"):
            assert "IF NOT EXISTS" in text, statement.location
        if text.startswith("ALTER"):
            assert " SET " in text, statement.location


def test_every_pipeline_dataset_has_a_schema_in_each_environments_database(
    statements: list[Statement],
) -> None:
    created = set(re.findall(r"CREATE SCHEMA IF NOT EXISTS (\w+\.\w+)", "\n".join(map(one_line, statements))))
    # The datasets the pipelines declare (dlt upper-cases them in Snowflake).
    datasets = pipeline_datasets()
    assert {"CURRENCIES", "PRODUCTS", "HUBSPOT", "EXCHANGE_RATES"} <= datasets
    for name in ("ci", "production"):
        environment = load_environment(name)
        assert environment.database is not None
        for dataset in datasets:
            assert f"{environment.database}.{dataset}" in created
        # dlt's staging datasets of the replace / merge pipelines
        for dataset in ("CURRENCIES", "PRODUCTS", "HUBSPOT"):
            assert f"{environment.database}.{dataset}_STAGING" in created
        text = "\n".join(map(one_line, statements))
        assert f"CREATE ROLE IF NOT EXISTS {environment.role} " in text
        assert f"CREATE WAREHOUSE IF NOT EXISTS {environment.warehouse} " in text


def test_loader_roles_have_least_privilege(statements: list[Statement]) -> None:
    loader_grants = [g for g in grants(statements) if principal(g) in LOADERS]
    assert loader_grants
    for grant in loader_grants:
        role, database = principal(grant), LOADERS[principal(grant)]
        assert not privileges(grant) & {
            "OWNERSHIP",
            "ALL",
            "ALL PRIVILEGES",
            "MANAGE GRANTS",
            "CREATE DATABASE",
        }
        assert not grant.args.get("grant_option")
        kind = grant.args["kind"].upper()
        if kind == "WAREHOUSE":
            assert privileges(grant) == {"USAGE"}
        elif kind == "INTEGRATION":
            assert (role, privileges(grant)) == ("LOADER", {"USAGE"})
        else:
            # Only its own environment's database: a CI key never reaches production data.
            assert securable(grant).split(".")[0] == database, (role, securable(grant))
            assert kind in {"DATABASE", "SCHEMA"}
            assert privileges(grant) <= {
                "USAGE",
                "CREATE TABLE",
                "CREATE STAGE",
                "CREATE FILE FORMAT",
                "CREATE PIPE",
                "CREATE SCHEMA",
            }
            if "CREATE SCHEMA" in privileges(grant):
                assert role == "LOADER_CI"  # production schemas are created by SYSADMIN only
    # Roles go only to the service users (and under SYSADMIN); no admin role is granted to anyone.
    role_grants = re.findall(r"GRANT ROLE (\w+) TO (ROLE|USER) (\w+)", "\n".join(map(one_line, statements)))
    assert set(role_grants) == {
        ("LOADER", "ROLE", "SYSADMIN"),
        ("LOADER_CI", "ROLE", "SYSADMIN"),
        ("READER", "ROLE", "SYSADMIN"),
        ("LOADER", "USER", "SVC_DLT"),
        ("LOADER_CI", "USER", "SVC_DLT_CI"),
    }


def test_readers_see_the_loaded_tables_of_raw_and_nothing_else(statements: list[Statement]) -> None:
    reader = [g for g in grants(statements) if principal(g) == "READER"]
    schemas = pipeline_datasets()
    assert {"CURRENCIES", "PRODUCTS", "HUBSPOT", "EXCHANGE_RATES"} <= schemas
    assert {(securable(g), frozenset(privileges(g))) for g in reader} == {
        ("RAW", frozenset({"USAGE"})),
        *{(f"RAW.{s}", frozenset({"USAGE"})) for s in schemas},
    }
    text = "\n".join(map(one_line, statements))
    for schema in schemas:
        for which in ("ALL", "FUTURE"):
            assert f"GRANT SELECT ON {which} TABLES IN SCHEMA RAW.{schema} TO ROLE READER" in text
    assert "_STAGING TO ROLE READER" not in text
    assert "RAW_CI" not in " ".join(one_line(s) for s in statements if "READER" in s.text)


def test_service_users_authenticate_with_their_own_rsa_key(statements: list[Statement]) -> None:
    text = "\n".join(map(one_line, statements))
    assert "CREATE USER IF NOT EXISTS SVC_DLT TYPE = SERVICE DEFAULT_ROLE = LOADER " in text
    assert "CREATE USER IF NOT EXISTS SVC_DLT_CI TYPE = SERVICE DEFAULT_ROLE = LOADER_CI " in text
    assert "PASSWORD" not in text.upper()
    # One IAM role per storage integration (EXCHANGE_RATES_LANDING -> EXCHANGE_RATES_ROLE_ARN).
    role_arns = [f"{name.removesuffix('_LANDING')}_ROLE_ARN" for name in integrations(statements)]
    assert "EXCHANGE_RATES_ROLE_ARN" in role_arns
    assert placeholders(statements) == sorted(
        [*role_arns, "SVC_DLT_CI_RSA_PUBLIC_KEY", "SVC_DLT_RSA_PUBLIC_KEY"]
    )


def test_each_storage_integration_allows_exactly_its_pipelines_stage(statements: list[Statement]) -> None:
    created = [s for s in statements if "STORAGE INTEGRATION" in s.text]
    assert "EXCHANGE_RATES_LANDING" in integrations(statements)
    assert len(created) == len(integrations(statements))
    stages = [
        s
        for folder in sorted(SQL_ROOT.iterdir())
        if folder.is_dir() and folder.name != "account"
        for s in load_statements([folder])
        if "CREATE STAGE" in s.text
    ]
    for integration in created:
        parsed = parse(integration)
        assert isinstance(parsed, exp.Create)
        assert parsed.args["kind"].upper() == "STORAGE INTEGRATION"
        name = re.search(r"CREATE STORAGE INTEGRATION IF NOT EXISTS (\w+)", one_line(integration))
        allowed = re.search(r"STORAGE_ALLOWED_LOCATIONS = \('([^']+)'\)", one_line(integration))
        assert name and allowed
        # Exactly one stage reads through it - its pipeline's - and from exactly the allowed location.
        (stage,) = [s for s in stages if f"STORAGE_INTEGRATION = {name[1]}" in one_line(s)]
        stage_url = re.search(r"URL = '([^']+)'", one_line(stage))
        assert stage_url
        assert allowed[1] == stage_url[1]
        if name[1] == "EXCHANGE_RATES_LANDING":
            assert stage.path.parent == SQL_ROOT / "exchange_rates"


def test_variables_are_filled_in_and_apply_refuses_to_start_without_them(
    statements: list[Statement], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    public_key = tmp_path / "rsa_key.pub"
    public_key.write_text(
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkq\nhkiG9w0BAQEF\n-----END PUBLIC KEY-----\n"
    )
    assert parse_variable(f"SVC_DLT_RSA_PUBLIC_KEY=@{public_key}") == (
        "SVC_DLT_RSA_PUBLIC_KEY",
        "MIIBIjANBgkqhkiG9w0BAQEF",
    )
    filled = substitute(
        statements,
        {
            "SVC_DLT_RSA_PUBLIC_KEY": "MIIBIjANBgkqhkiG9w0BAQEF",
            "EXCHANGE_RATES_ROLE_ARN": "arn:aws:iam::1:role/o'k",
        },
    )
    text = render(filled)
    assert "RSA_PUBLIC_KEY = 'MIIBIjANBgkqhkiG9w0BAQEF'" in text
    assert "'arn:aws:iam::1:role/o''k'" in text  # quoted for the string literal
    assert placeholders(filled) == sorted(
        p for p in placeholders(statements) if p not in {"SVC_DLT_RSA_PUBLIC_KEY", "EXCHANGE_RATES_ROLE_ARN"}
    )
    assert "SVC_DLT_CI_RSA_PUBLIC_KEY" in placeholders(filled)

    with pytest.raises(ConfigurationError, match="expected NAME=VALUE"):
        parse_variable("no-equals-sign")
    # apply stops before connecting: no credentials are configured here, so connecting would fail differently.
    assert main(["apply", str(ACCOUNT), "--var", f"SVC_DLT_RSA_PUBLIC_KEY=@{public_key}"]) == 1
    err = capsys.readouterr().err
    unfilled = [p for p in placeholders(statements) if p != "SVC_DLT_RSA_PUBLIC_KEY"]
    assert "no value for " + ", ".join(f"&{{{p}}}" for p in unfilled) in err
    assert "&{EXCHANGE_RATES_ROLE_ARN}, " in err and "&{SVC_DLT_CI_RSA_PUBLIC_KEY}" in err
    assert "nothing was applied" in err
    assert main(["print", str(ACCOUNT), "--var", "SVC_DLT_CI_RSA_PUBLIC_KEY=KEYCI"]) == 0
    out = capsys.readouterr().out
    assert "ALTER USER SVC_DLT_CI SET RSA_PUBLIC_KEY = 'KEYCI';" in out
    assert "'&{SVC_DLT_RSA_PUBLIC_KEY}'" in out  # left for SnowSQL's variable substitution
