"""Grading leaves nothing in the temp folder.

Every folder the grading tree makes (judges' copies, sandboxes' scratch folders, zygotes, the
jailed nbgrader kernels' homes) lives in ``TMPDIR`` and is gone when grading ends. The conftest
points ``TMPDIR`` of the whole course test session at one fresh folder and fails the session if
anything is left there; the tests below check the two ways out of a kernel and a grading batch
one at a time, so a leftover names its cause.
"""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict

import pytest

from vitgrade import weeks
from vitgrade.confine import isolate


def _left(folder, wait=10.0):
    """What is still in ``folder`` after up to ``wait`` seconds (cleaners run after their process)."""
    deadline = time.monotonic() + wait
    while (left := sorted(p.name for p in folder.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def _jailed_sleep(tmp_path, temp, seconds):
    """A process started as nbgrader starts a kernel: through the jail, in its own session."""
    policy = isolate.new_policy(1024, 2**20, network=True)
    cmd = [sys.executable, "-m", "vitgrade.confine.jail", json.dumps(asdict(policy)), "--",
           sys.executable, "-c", f"import time; time.sleep({seconds})"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=dict(os.environ, TMPDIR=str(temp)), start_new_session=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not any(temp.glob("vitgrade-kernel-*")):
        assert proc.poll() is None and time.monotonic() < deadline, "the jailed process did not start"
        time.sleep(0.1)
    time.sleep(1.0)  # into its sleep (the folder must go at any moment, but this is the usual one)
    return proc


@pytest.mark.skipif(isolate.level() == "basic", reason="no kernel folder at isolation level basic")
@pytest.mark.parametrize("how", ["it exits", "SIGKILL to its process group"])
def test_jailed_kernel_folder_is_removed_however_the_kernel_ends(tmp_path, how):
    """A kernel ends by itself (asked to shut down), or the kernel manager, tired of waiting,
    sends SIGKILL to its whole process group, the jail's supervisor included; the kernel's
    vitgrade-kernel-* folder must go either way."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    proc = _jailed_sleep(tmp_path, temp, 3 if how == "it exits" else 120)
    if how != "it exits":
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(60)
    assert _left(temp) == [], f"left in TMPDIR after {how}"


def test_a_grading_run_leaves_nothing(tmp_path):
    """`vitgrade grade` of one submission (zygote, judge, sandboxed worker) in a private TMPDIR."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    proc = subprocess.run([sys.executable, "-m", "vitgrade.cli", "grade", "1", str(weeks.STUDENT_PACKAGE.parent)],
                          env=dict(os.environ, TMPDIR=str(temp)), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _left(temp) == []
