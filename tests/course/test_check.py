"""`vitgrade check N`: the student's own public tests, and a note when an earlier week is the cause.

In a clone of the repository, Week 2 runs on the student's own Week 1 attention. When Week 2's
public tests fail and Week 1's fail too, `vitgrade check 2` says so (and that the grader uses the
reference Week 1 code); when Week 1 is fine it says nothing about it.
"""

import shutil
import subprocess
import sys

from vitgrade import weeks
from vitgrade.build import mutants, submissions


def check(week: int, root) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vitgrade.cli", "check", str(week), "--root", str(root)],
                          capture_output=True, text=True, timeout=600)


def test_check_2_points_at_an_unfinished_week_1(tmp_path):
    root = submissions.make(tmp_path / "student", "solution")  # Week 2 done ...
    shutil.copy2(weeks.STUDENT_PACKAGE / "attention.py", root / weeks.PACKAGE / "attention.py")  # ... Week 1 not
    run = check(2, root)
    assert run.returncode == 1, run.stdout + run.stderr
    note = [line for line in run.stdout.splitlines() if line.startswith("Note:")]
    assert note, run.stdout
    assert "of Week 1 also fail" in note[0] and "attention.py" in note[0] and "vitgrade check 1" in note[0]
    assert "costs no points" in note[0]


def test_check_2_blames_week_1_only_when_week_1_fails(tmp_path):
    bug = next(m for m in mutants.load(2) if m.name == "layernorm_default_eps")  # a Week 2 bug only
    root = submissions.make(tmp_path / "student", "solution", bug)
    run = check(2, root)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "FAIL" in run.stdout and "Note:" not in run.stdout, run.stdout
