"""The pipeline generator: refuses bad names cleanly, and what it makes passes every check unedited."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tools.new_pipeline.__main__ import GeneratorError, generate, main

ROOT = Path(__file__).resolve().parents[2]


def copy_repository(target: Path) -> Path:
    """The repository's files (tracked, and new ones git does not ignore) in a fresh git repository."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    for name in listed:
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    subprocess.run(["git", "init", "-q"], cwd=target, check=True)
    subprocess.run(["git", "add", "-A"], cwd=target, check=True)
    return target


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.parts
    }


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_repository(tmp_path_factory.mktemp("repo"))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("9lives", "not a usable pipeline name"),
        ("Orders", "not a usable pipeline name"),
        ("order-lines", "not a usable pipeline name"),
        ("class", "not a usable pipeline name"),
        ("utils", "is reserved"),
        ("common", "is reserved"),
        ("currencies", "exists already"),
    ],
)
def test_bad_names_are_refused_and_nothing_is_written(repo_copy: Path, name: str, message: str) -> None:
    before = snapshot(repo_copy)
    with pytest.raises(GeneratorError, match=message):
        generate(name, "api", repo_copy)
    assert snapshot(repo_copy) == before


def test_the_command_line_says_nothing_was_written(
    repo_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["currencies", "api", "--root", str(repo_copy)]) == 2
    assert "exists already" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["shipments", "graphql", "--root", str(repo_copy)])
