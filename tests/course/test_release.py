"""The student release holds no solution, hidden test or mutant, and the leak check can fail."""

import shutil

import pytest

from vitgrade import weeks
from vitgrade.build import release


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    out = tmp_path_factory.mktemp("release") / "vit-course"
    found = release.build_release(out)
    return out, found


def test_release_has_no_leaks(tree):
    out, found = tree
    assert found == []
    for needed in ("README.md", "src/vitcourse/attention.py", "tests/public/01_attention", "weeks/01_attention"):
        assert (out / needed).exists(), f"release misses {needed}"


def test_leak_check_catches_a_solution_module(tree, tmp_path):
    out, _ = tree
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    shutil.copy2(weeks.SOLUTION_PACKAGE / "attention.py", copy / "src" / "vitcourse" / "attention.py")
    found = release.leaks(copy)
    assert any("solution/hidden-test marker" in f for f in found)
    assert any("line of the solution attention.py" in f for f in found)


def test_leak_check_catches_hidden_tests_and_mutants(tree, tmp_path):
    out, _ = tree
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    hidden = next(weeks.get(1).suite_dir("hidden").glob("test_*.py"))
    (copy / "notes.txt").write_text(hidden.read_text())
    mutant = next(weeks.get(1).mutants_dir.glob("*.mutant"))
    shutil.copy2(mutant, copy / "weeks" / "bug.mutant")
    found = release.leaks(copy)
    assert any("hidden test" in f for f in found)
    assert any("mutant" in f for f in found)
