"""Slow end-to-end tests are marked where they are written, and an unmarked one is refused.

The marker travels with the test (a decorator or the module's `pytestmark`), so renaming or moving
a slow test keeps it out of `./dev test`; a test added to an end-to-end file without the marker
stops collection (`tests/conftest.py`), naming it.
"""

from __future__ import annotations

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
