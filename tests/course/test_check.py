"""`vitgrade check N`: the student's own public tests, one task at a time, the honest last line, and
a note when an earlier week is the cause.

In a clone of the repository, Week 2 runs on the student's own Week 1 attention. When Week 2's
public tests fail and Week 1's fail too, `vitgrade check 2` says so (and that the grader uses the
reference Week 1 code); when Week 1 is fine it says nothing about it.
"""

import shutil
import subprocess
import sys

from vitgrade import weeks
from vitgrade.build import mutants, submissions


def check(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vitgrade.cli", "check", *map(str, args)], cwd=weeks.REPO,
                          capture_output=True, text=True, timeout=600)


def test_one_task_on_the_reference_passes_and_says_what_decides():
    proc = check(1, "--task", "1.2", "--root", weeks.SOLUTIONS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Task 1.2 · MultiHeadAttention" in proc.stdout and "Task 1.1" not in proc.stdout
    assert "Public tests passed; the hidden tests decide the grade." in proc.stdout
    assert "all tests passed" not in proc.stdout.lower()


def test_the_stub_fails_with_the_task_named():
    proc = check("01_attention", "--task", "1.1")  # the repository's own src/: the stubs
    assert proc.returncode == 1
    assert "FAIL" in proc.stdout and "Week 1 · Task 1.1" in proc.stdout


def test_check_2_points_at_an_unfinished_week_1(tmp_path):
    root = submissions.make(tmp_path / "student", "solution")  # Week 2 done ...
    shutil.copy2(weeks.STUDENT_PACKAGE / "attention.py", root / weeks.PACKAGE / "attention.py")  # ... Week 1 not
    run = check(2, "--root", root)
    assert run.returncode == 1, run.stdout + run.stderr
    note = [line for line in run.stdout.splitlines() if line.startswith("Note:")]
    assert note, run.stdout
    assert "of Week 1 also fail" in note[0] and "attention.py" in note[0] and "vitgrade check 1" in note[0]
    assert "costs no points" in note[0]


def test_check_2_blames_week_1_only_when_week_1_fails(tmp_path):
    bug = next(m for m in mutants.load(2) if m.name == "layernorm_default_eps")  # a Week 2 bug only
    root = submissions.make(tmp_path / "student", "solution", bug)
    run = check(2, "--root", root)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "FAIL" in run.stdout and "Note:" not in run.stdout, run.stdout
