"""`vitgrade check`: what a student runs. One task at a time, and the honest last line."""

import subprocess
import sys

from vitgrade import weeks


def check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vitgrade.cli", "check", *args], cwd=weeks.REPO,
                          capture_output=True, text=True, timeout=300)


def test_one_task_on_the_reference_passes_and_says_what_decides():
    proc = check("1", "--task", "1.2", "--root", str(weeks.SOLUTIONS))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Task 1.2 · MultiHeadAttention" in proc.stdout and "Task 1.1" not in proc.stdout
    assert "Public tests passed; the hidden tests decide the grade." in proc.stdout
    assert "all tests passed" not in proc.stdout.lower()


def test_the_stub_fails_with_the_task_named():
    proc = check("01_attention", "--task", "1.1")  # the repository's own src/: the stubs
    assert proc.returncode == 1
    assert "FAIL" in proc.stdout and "Week 1 · Task 1.1" in proc.stdout
