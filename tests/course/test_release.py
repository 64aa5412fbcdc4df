"""The student release holds no solution, hidden test or mutant, and the leak check can fail; its
README is the students' (rendered from the repository's) and its commands work there."""

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys

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


# ------------------------------------------------------------------ the release's own README
INTERACTIVE = {"lab", "demo"}  # JupyterLab, the Week 8 demo: they wait, not run here (test_demo.py starts the demo)


def readme_commands(text: str) -> list[str]:
    """Every ``python3 course.py ...`` line of the README's bash blocks, comments stripped."""
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    return [line.split("#")[0].strip() for block in blocks for line in block.splitlines()
            if line.startswith("python3 course.py")]


def test_release_readme_is_the_students(tree):
    out, _ = tree
    text = (out / "README.md").read_text()
    assert text == release.render_readme((weeks.REPO / "README.md").read_text()), "one source, rendered"
    for instructor_only in ("grade-demo", "tests/course", "vitgrade verify", "<!--", "solutions/"):
        assert instructor_only not in text, f"the student README mentions {instructor_only!r}"
    assert {c.split()[2] for c in readme_commands(text)} >= {"setup", "lab", "check", "test"}
    assert "python3 course.py test" in (weeks.REPO / "README.md").read_text()  # the repository keeps its own


def fake_venv(folder, course) -> dict:
    """The environment of the running tests, presented as an already set-up VIT_VENV for ``course``
    (same pins), so ``course.py setup`` has nothing to install and nothing shared is modified."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    digest = hashlib.sha256()
    for name in ("requirements.txt", "pyproject.toml"):
        digest.update((course / name).read_bytes())
    (folder / ".course-installed").write_text(digest.hexdigest())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # course.py sets its own
    return dict(env, VIT_VENV=str(folder))


def test_release_readme_commands_work_in_a_fresh_copy(tree, tmp_path):
    """Every course.py command of the release's README, exactly as written, in a fresh copy of the
    release: on the untouched stubs they run and report failing tests (never 'no tests ran' or a
    missing folder); with Week 1 solved, `check 1` reports that the public tests pass."""
    out, _ = tree
    course = tmp_path / "course"
    shutil.copytree(out, course)
    env = fake_venv(tmp_path / "venv", course)
    commands = [c for c in readme_commands((course / "README.md").read_text()) if c.split()[2] not in INTERACTIVE]
    for command in commands:
        run = subprocess.run(shlex.split(command), cwd=course, env=env, capture_output=True, text=True, timeout=600)
        said = run.stdout + run.stderr
        if command.split()[2] == "setup":
            assert run.returncode == 0 and "Installing" not in said, said
        else:  # the stubs fail their public tests: exit 1, with the failures listed
            assert run.returncode == 1, f"{command}: exit {run.returncode}\n{said[-3000:]}"
            assert "no tests ran" not in said and "Could not run" not in said and "FAIL" in said.upper(), said
    shutil.copy2(weeks.SOLUTION_PACKAGE / "attention.py", course / "src" / weeks.PACKAGE / "attention.py")
    check = next(c for c in commands if c.split()[2] == "check")
    run = subprocess.run(shlex.split(check), cwd=course, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and "Public tests passed; the hidden tests decide the grade." in run.stdout, run.stdout


def test_release_course_py_turns_instructor_commands_away(tree, tmp_path):
    out, _ = tree
    run = subprocess.run([sys.executable, "course.py", "grade-demo"], cwd=out, capture_output=True, text=True,
                         timeout=60, env=fake_venv(tmp_path / "venv", out))
    assert run.returncode == 2 and "for instructors" in run.stdout
