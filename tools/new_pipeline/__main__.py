"""Generate a new pipeline that follows every convention: `./dev new-pipeline <name> <pattern>`.

Patterns (the seed's destination patterns):

  api          public JSON API -> warehouse, merge on id, incremental on updated_at
  saas         SaaS API behind a bearer token (secret) -> warehouse, merge on id, incremental
  sql          PostgreSQL table -> warehouse, merge on id, incremental on updated_at, soft deletes
  s3-snowpipe  API -> Parquet in the S3 landing bucket -> Snowpipe, append-only, exactly once

It writes the source package, the pipeline, the flow, its prefect.yaml deployment, the config (and
example secrets) sections, a sandbox stand-in to develop against, and tests - or, if the name is
unusable, nothing at all.
"""

from __future__ import annotations

import argparse
import keyword
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = Path(__file__).resolve().parent / "templates"
PATTERNS = ("api", "saas", "sql", "s3-snowpipe")
# Names that would shadow a package, a module of ours or a library the code imports.
RESERVED = {
    "common", "utils", "sources", "pipelines", "flows", "sandbox", "tests", "tools", "bench", "snowflake",
    "dlt", "prefect", "duckdb", "requests", "sqlalchemy", "pyarrow", "test", "main", "records",
    "standins", "records_api", "records_table", "conftest", "setup", "all", "new_pipeline",
}  # fmt: skip
NAME = re.compile(r"[a-z][a-z0-9_]{1,40}")
MARKER = re.compile(r"\s*(?:#|<!--)\s*@only:([\w,-]+)\s*(?:-->)?\s*$")

SCHEDULES = {
    "api": ('cron: "30 6 * * *"', "daily"),
    "saas": ('cron: "*/30 * * * *"', "every 30 minutes"),
    "sql": ('cron: "15 * * * *"', "hourly"),
    "s3-snowpipe": ('cron: "0 7 * * *"', "daily"),
}


class GeneratorError(ValueError):
    """The request cannot be honoured; nothing was written."""


@dataclass(frozen=True)
class Plan:
    """Every file to write and every section to append, decided before anything is written."""

    files: dict[Path, str]
    appends: dict[Path, str]


def render(template: str, name: str, pattern: str) -> str:
    """Fill in the placeholders and keep only the lines meant for `pattern`."""
    out = []
    for line in template.splitlines():
        match = MARKER.search(line)
        if match:
            if pattern not in match.group(1).split(","):
                continue
            line = line[: match.start()]
        out.append(line)
    text = "\n".join(out) + "\n"
    disposition = "append" if pattern == "s3-snowpipe" else "merge"
    title = name.replace("_", " ").title()
    return (
        text.replace("__UPPER__", name.upper())
        .replace("__TITLE__", title)
        .replace("__DISPOSITION__", disposition)
        .replace("__PATTERN__", pattern)
        .replace("__NAME__", name)
    )


def validate(name: str, pattern: str, root: Path) -> None:
    """Refuse names that are not identifiers, are reserved, or exist already.

    Raises:
        GeneratorError: With what is wrong and what to do.
    """
    if pattern not in PATTERNS:
        raise GeneratorError(f"unknown pattern {pattern!r}; choose one of {', '.join(PATTERNS)}")
    if not NAME.fullmatch(name) or keyword.iskeyword(name):
        raise GeneratorError(
            f"{name!r} is not a usable pipeline name: use 2-41 characters, lower-case letters, digits "
            "and underscores, starting with a letter (it becomes a Python package and a dlt section)"
        )
    if name in RESERVED:
        raise GeneratorError(f"{name!r} is reserved (it would shadow a module or package); pick another name")
    for existing in (
        root / "sources" / name,
        root / "pipelines" / f"{name}.py",
        root / "flows" / f"{name}.py",
    ):
        if existing.exists():
            raise GeneratorError(f"a pipeline named {name!r} exists already ({existing.relative_to(root)})")
    if f"entrypoint: flows/{name}.py:" in (root / "prefect.yaml").read_text():
        raise GeneratorError(f"prefect.yaml already has a deployment for flows/{name}.py")


def plan(name: str, pattern: str, root: Path) -> Plan:
    """Decide every file and section for the new pipeline."""
    kind = "sql" if pattern == "sql" else "http"
    # Templates carry a `.tmpl` suffix so that linters and type checkers leave them alone.
    t = {
        p.relative_to(TEMPLATES).as_posix().removesuffix(".tmpl"): p.read_text()
        for p in TEMPLATES.rglob("*")
        if p.is_file()
    }
    files = {
        root / "sources" / name / "__init__.py": t[f"{kind}/__init__.py"],
        root / "sources" / name / "source.py": t[f"{kind}/source.py"],
        root / "sources" / name / "settings.py": t[f"{kind}/settings.py"],
        root / "sources" / name / "README.md": t[f"{kind}/README.md"],
        root / "pipelines" / f"{name}.py": t["common/pipeline.py"],
        root / "flows" / f"{name}.py": t["common/flow.py"],
        root / "sandbox" / "standins" / f"{name}.py": t[f"{kind}/standin.py"],
        root / "tests" / "sources" / name / "test_source.py": t[f"{kind}/test_source.py"],
        root / "tests" / "pipelines" / f"test_{name}.py": t["common/test_pipeline.py"],
        root / "tests" / "flows" / f"test_{name}.py": t["common/test_flow.py"],
    }
    if pattern == "s3-snowpipe":
        files[root / "snowflake" / name / "pipe.sql"] = t["s3/pipe.sql"]
    rendered = {path: render(text, name, pattern) for path, text in files.items()}

    cron, when = SCHEDULES[pattern]
    deployment = (
        f"\n  - <<: *scheduled\n"
        f"    name: {name}\n"
        f"    entrypoint: flows/{name}.py:{name}_flow\n"
        f"    description: {name} ({pattern} pattern), {when}. Generated by ./dev new-pipeline.\n"
        f"    tags: [data-pipelines, {name}, {pattern}, scheduled]\n"
        f"    schedules:\n"
        f"      - {cron}\n"
        f"        timezone: Europe/London\n"
    )
    config = (
        f'\n[sources.{name}]\n# TODO: the real address of the {name} API.\nbase_url = "https://api.example.com/v1"\n'
        if kind == "http"
        else ""
    )
    secrets = {
        "saas": f'\n# The {name} source (generated).\n[sources.{name}]\naccess_token = "<bearer token>"\n',
        "sql": (
            f"\n# The {name} source (generated): a read-only database role.\n[sources.{name}.credentials]\n"
            'drivername = "postgresql+psycopg2"\nhost = "<host>"\nport = 5432\ndatabase = "<database>"\n'
            'username = "<read-only role>"\npassword = "<password>"\n'
        ),
    }.get(pattern, "")
    appends = {root / "prefect.yaml": deployment}
    if config:
        appends[root / ".dlt" / "config.toml"] = config
    if secrets:
        appends[root / ".dlt" / "secrets.toml.example"] = secrets
    return Plan(rendered, appends)


def generate(name: str, pattern: str, root: Path = ROOT) -> Plan:
    """Validate, then write everything. Nothing is written when validation fails.

    Returns:
        What was written.
    """
    validate(name, pattern, root)
    result = plan(name, pattern, root)
    for path, text in result.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for path, text in result.appends.items():
        with path.open("a") as handle:
            handle.write(text)
    _tidy([p for p in result.files if p.suffix == ".py"], root)
    return result


def _tidy(paths: list[Path], root: Path) -> None:
    """Format and lint-fix the generated Python with the project's ruff settings (best effort)."""
    names = [str(p) for p in paths]
    for command in (["format", "--quiet"], ["check", "--fix", "--quiet", "--exit-zero"]):
        subprocess.run([sys.executable, "-m", "ruff", *command, *names], cwd=root, check=False)  # noqa: S603 - our own paths


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(
        prog="./dev new-pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("name", help="pipeline name: lower-case letters, digits, underscores")
    parser.add_argument("pattern", choices=PATTERNS, help="which destination pattern")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        result = generate(args.name, args.pattern, args.root)
    except GeneratorError as exc:
        print(f"new-pipeline: {exc}. Nothing was written.", file=sys.stderr)
        return 2
    print(f"Created the {args.name} pipeline ({args.pattern}):")
    for path in [*result.files, *result.appends]:
        print(f"  {'appended' if path in result.appends else 'wrote   '} {path.relative_to(args.root)}")
    print(
        f"\nNext: ./dev pytest tests/conventions tests/sources/{args.name} tests/pipelines/test_{args.name}.py "
        f"tests/flows/test_{args.name}.py, then ./dev demo (it runs the new flow against its stand-in)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
