"""Static and runtime checks of the project's conventions that no standard tool covers.

Import rules between the layers are import-linter contracts (`.importlinter`) and the ban on
`os.environ` in sources and pipelines is ruff's banned-api rule; `test_architecture.py` runs both.

Each check takes the repository root and returns a list of violations (empty when all is well), so
the same checks run against this repository and against the bad fixtures that prove they bite.
"""

from __future__ import annotations

import ast
import importlib.util
import itertools
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

DESTINATION_NAMES = {
    "snowflake",
    "duckdb",
    "motherduck",
    "filesystem",
    "bigquery",
    "redshift",
    "postgres",
    "databricks",
    "athena",
    "mssql",
    "synapse",
}
CREDENTIAL_NAME = re.compile(r"(password|passwd|secret|token|api_?key|private_?key|passphrase)", re.I)
# Placeholders that are obviously not credentials.
PLACEHOLDER = re.compile(r"^(|<.*>|\*+|x+|changeme|\{\{.*\}\})$", re.I)
# detect-secrets' inline marker for an audited, deliberately fake value; honoured here too.
ALLOWLIST_PRAGMA = "pragma: allowlist secret"
RESOURCE_FACTORIES = {"resource", "transformer", "sql_table"}


def python_files(root: Path, package: str) -> list[Path]:
    """Every module of a top-level package, sorted."""
    return sorted(p for p in (root / package).rglob("*.py") if "__pycache__" not in p.parts)


def _rel(root: Path, path: Path) -> str:
    return str(path.relative_to(root))


def _call_name(node: ast.expr) -> str:
    """`dlt.resource` -> "resource", `sql_table` -> "sql_table"; "" for anything else."""
    func = node.func if isinstance(node, ast.Call) else node
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def _keywords(node: ast.expr) -> dict[str, ast.expr]:
    if isinstance(node, ast.Call):
        return {k.arg: k.value for k in node.keywords if k.arg}
    return {}


def _resource_calls(tree: ast.AST) -> Iterator[ast.expr]:
    """Decorators and calls that create dlt resources."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for deco in node.decorator_list:
                if _call_name(deco) in {"resource", "transformer"}:
                    yield deco
        elif isinstance(node, ast.Call) and _call_name(node) in RESOURCE_FACTORIES:
            yield node


def _literal(node: ast.expr | None) -> Any:
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


def check_sources(root: Path) -> list[str]:
    """Sources: `section=` on every source, explicit dispositions, keys for merges, no destinations.

    What sources import (no Prefect, no pipelines or flows) is an import-linter contract in
    `.importlinter`, and `os.environ` is ruff's banned-api rule (TID251): see test_architecture.py.
    """
    problems: list[str] = []
    for path in python_files(root, "sources"):
        rel = _rel(root, path)
        tree = ast.parse(path.read_text(), filename=rel)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                for deco in node.decorator_list:
                    if _call_name(deco) == "source" and "section" not in _keywords(deco):
                        problems.append(f"{rel}:{deco.lineno}: @dlt.source `{node.name}` has no section=")
        for call in _resource_calls(tree):
            kw = _keywords(call)
            line = getattr(call, "lineno", 0)
            if "write_disposition" not in kw:
                problems.append(f"{rel}:{line}: resource without an explicit write_disposition")
                continue
            disposition = _literal(kw["write_disposition"])
            is_merge = disposition == "merge" or (
                isinstance(disposition, dict) and disposition.get("disposition") == "merge"
            )
            if is_merge and "primary_key" not in kw and "merge_key" not in kw:
                problems.append(f"{rel}:{line}: merge resource without primary_key")
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value.lower() in DESTINATION_NAMES
            ):
                problems.append(f"{rel}:{node.lineno}: source names destination {node.value!r}")
            if (
                isinstance(node, ast.Attribute)
                and node.attr in {"destinations", "pipeline"}
                and isinstance(node.value, ast.Name)
                and node.value.id == "dlt"
            ):
                problems.append(f"{rel}:{node.lineno}: source uses dlt.{node.attr}")
            if isinstance(node, ast.keyword) and node.arg == "destination":
                problems.append(f"{rel}:{node.value.lineno}: source passes destination=")
    return problems


def check_flow_imports(root: Path) -> list[str]:
    """Flows import pipelines only inside tasks (never at module level)."""
    problems: list[str] = []
    for path in python_files(root, "flows"):
        tree = ast.parse(path.read_text(), filename=_rel(root, path))
        for node in tree.body:
            for name in _imported(node):
                if name.split(".")[0] == "pipelines":
                    problems.append(f"{_rel(root, path)}:{node.lineno}: imports {name} at module level")
    return problems


def _imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return [node.module]
    return []


def load_module(root: Path, path: Path) -> ModuleType:
    """Import a module from a file, as `<package>.<name>` so absolute imports inside it work."""
    name = ".".join(path.relative_to(root).with_suffix("").parts)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def flow_modules(root: Path) -> dict[Path, list[Any]]:
    """Modules under flows/ that define at least one Prefect flow, with their flow objects."""
    from prefect import Flow

    found: dict[Path, list[Any]] = {}
    for path in python_files(root, "flows"):
        module = load_module(root, path)
        flows = [
            obj
            for obj in vars(module).values()
            if isinstance(obj, Flow) and getattr(obj.fn, "__module__", None) == module.__name__
        ]
        if flows:
            found[path] = flows
    return found


def check_task_retries(root: Path) -> list[str]:
    """Every Prefect task in flows/ retries at least 3 times with growing delays."""
    from prefect import Task

    problems: list[str] = []
    for path in python_files(root, "flows"):
        module = load_module(root, path)
        for attr, obj in vars(module).items():
            if not isinstance(obj, Task) or getattr(obj.fn, "__module__", None) != module.__name__:
                continue
            where = f"{_rel(root, path)}: task `{attr}`"
            if (obj.retries or 0) < 3:
                problems.append(f"{where} has retries={obj.retries}; needs >= 3")
                continue
            delays = obj.retry_delay_seconds
            if callable(delays):
                delays = delays(obj.retries)
            if not isinstance(delays, list) or len(delays) < 2:
                problems.append(f"{where} has retry_delay_seconds={delays!r}; use a growing list")
                continue
            if any(b < a for a, b in itertools.pairwise(delays)) or delays[-1] <= delays[0]:
                problems.append(f"{where} has retry delays {delays} that do not grow")
    return problems


def check_deployments(root: Path) -> list[str]:
    """Every flow defined under flows/ has a deployment in prefect.yaml."""
    config = yaml.safe_load((root / "prefect.yaml").read_text()) or {}
    entrypoints = {d.get("entrypoint") for d in config.get("deployments") or []}
    problems = []
    for path, flows in flow_modules(root).items():
        for flow in flows:
            entry = f"{_rel(root, path)}:{flow.fn.__name__}"
            if entry not in entrypoints:
                problems.append(f"{entry} has no deployment in prefect.yaml")
    return problems


def check_credential_literals(root: Path, packages: tuple[str, ...]) -> list[str]:
    """No credential-looking literal assigned in code, and no PEM key material."""
    problems: list[str] = []
    for package in packages:
        for path in python_files(root, package):
            rel = _rel(root, path)
            text = path.read_text()
            if "-----BEGIN" in text and "PRIVATE KEY" in text:
                problems.append(f"{rel}: contains PEM private key material")
            lines = text.splitlines()
            for node in ast.walk(ast.parse(text, filename=rel)):
                for name, value in _named_values(node):
                    if ALLOWLIST_PRAGMA in lines[value.lineno - 1]:
                        continue  # audited, e.g. moto's documented fake key
                    if (
                        CREDENTIAL_NAME.search(name)
                        and isinstance(value, ast.Constant)
                        and isinstance(value.value, str)
                        and not PLACEHOLDER.match(value.value)
                    ):
                        problems.append(f"{rel}:{value.lineno}: `{name}` is set to a string literal")
    return problems


def _named_values(node: ast.AST) -> Iterator[tuple[str, ast.expr]]:
    if isinstance(node, ast.Assign | ast.AnnAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            if isinstance(target, ast.Name) and node.value is not None:
                yield target.id, node.value
    elif isinstance(node, ast.keyword) and node.arg:
        yield node.arg, node.value
    elif isinstance(node, ast.Dict):
        for key, value in zip(node.keys, node.values, strict=False):
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                yield key.value, value
    elif isinstance(node, ast.arguments):
        positional = node.posonlyargs + node.args
        for arg, default in zip(
            positional[len(positional) - len(node.defaults) :], node.defaults, strict=False
        ):
            yield arg.arg, default
        for arg, kw_default in zip(node.kwonlyargs, node.kw_defaults, strict=False):
            if kw_default is not None:
                yield arg.arg, kw_default
