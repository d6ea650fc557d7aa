"""The markers the suite's parallel run relies on: `slow` where a test is written, `xdist_group`.

The slow marker travels with the test (a decorator or the module's `pytestmark`), so renaming or
moving a slow test keeps it out of `./dev test`; a test added to an end-to-end file without the
marker stops collection (`tests/conftest.py`), naming it. Tests sharing a session server carry an
`xdist_group` and must run on one worker under `--dist loadgroup` (`./dev test`).
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import END_TO_END, unmarked_end_to_end

pytest_plugins = ["pytester"]

END_TO_END_FILE = """
import pytest

def test_unmarked() -> None:
    pass

@pytest.mark.slow
def test_marked() -> None:
    pass
"""
MARKED_MODULE = """
import pytest

pytestmark = pytest.mark.slow

def test_renamed_but_still_slow() -> None:
    pass
"""


def test_an_unmarked_test_in_an_end_to_end_file_is_named_and_marked_ones_pass(
    pytester: pytest.Pytester,
) -> None:
    assert "deploy/" in END_TO_END and "test_main_job.py" in END_TO_END
    (pytester.path / "deploy").mkdir()
    (pytester.path / "deploy" / "test_e2e.py").write_text(END_TO_END_FILE)
    (pytester.path / "deploy" / "test_whole_module.py").write_text(MARKED_MODULE)
    (pytester.path / "test_main_job.py").write_text(END_TO_END_FILE)
    (pytester.path / "test_fast.py").write_text("def test_unmarked_elsewhere() -> None:\n    pass\n")
    items, _ = pytester.inline_genitems("-p", "no:xdist", "-p", "no:cacheprovider")

    assert len(items) == 6
    assert sorted(unmarked_end_to_end(items, pytester.path)) == [
        "deploy/test_e2e.py::test_unmarked",
        "test_main_job.py::test_unmarked",
    ]


GROUPED = """
import os
import pytest

@pytest.mark.parametrize("n", range(6))
def test_in_a_group(n: int) -> None:
    print("worker", os.environ["PYTEST_XDIST_WORKER"])

@pytest.mark.parametrize("n", range(6))
def test_anywhere(n: int) -> None:
    pass
"""
GROUPING_CONFTEST = """
import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    for item in items:
        if item.name.startswith("test_in_a_group"):
            item.add_marker(pytest.mark.xdist_group("shared-server"))
"""


def test_tests_of_one_xdist_group_run_on_one_worker(pytester: pytest.Pytester) -> None:
    # Marked the way tests/conftest.py marks them (at collection). pytest 9.2 with pytest-xdist 3.8
    # ignored the group and ran these on both workers (pytest-dev/pytest-xdist#1386).
    pytester.makeconftest(GROUPING_CONFTEST)
    pytester.makepyfile(test_grouped=GROUPED)
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "loadgroup", "-v", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=12)
    workers = {
        match.group(1)
        for line in result.outlines
        if (match := re.match(r"\[(gw\d)\] .*PASSED .*test_in_a_group\[\d\]@shared-server", line))
    }
    assert len(workers) == 1, result.outlines
    grouped = [line for line in result.outlines if "PASSED" in line and "test_in_a_group" in line]
    assert len(grouped) == 6
