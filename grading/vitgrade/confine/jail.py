"""``python -m vitgrade.confine.jail POLICY_JSON -- CMD...``: confine this process, then become CMD.

Used to start nbgrader's kernels (see :class:`vitgrade.autograde.nbtrust.JailedKernelManager`):
the kernel that runs a student's notebook gets the same limits as the sandbox worker (memory,
file size, its own session, an environment token for killing leftovers) and, where the machine
allows it, the same allow-list view of the file system (its notebook folder read-only, a fresh
home folder, the Python installation; :mod:`vitgrade.confine.view`), its own PID namespace and a
separate uid. It keeps the network: the kernel talks to nbgrader over ZMQ sockets on localhost.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from vitgrade import settings
from vitgrade.confine import isolate

KEEP = ("PATH", "LANG", "LC_ALL", "TZ", "MPLBACKEND", "NBGRADER_EXECUTION", "VIT_SCALE", "VIT_OFFLINE", "VIT_DATA_DIR")
KEEP_PREFIXES = ("JPY_", "JUPYTER_", "PYDEVD_")


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "--":
        raise SystemExit("usage: python -m vitgrade.confine.jail POLICY_JSON -- CMD...")
    policy = isolate.Policy(**json.loads(argv[0]))
    cmd = argv[2:]
    # The submission's own disk (a tmpfs the grader made, vitgrade.confine.scratch), else the
    # grader's TMPDIR, read before the environment is narrowed.
    tmp = policy.scratch or tempfile.gettempdir()
    # The kernel gets an allow-list of the grader's environment, never the rest (credentials).
    keep = {k: v for k, v in os.environ.items() if k in KEEP or k.startswith(KEEP_PREFIXES)}
    os.environ.clear()
    os.environ.update(keep)
    os.environ[isolate.TOKEN_ENV] = policy.token
    threads = str(settings.threads())  # oversubscribed OpenMP threads spin: one per process
    os.environ.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    if policy.level == "basic":
        isolate.confine(policy)
        os.execv(cmd[0], cmd)
    # The kernel's own folders: a home (connection file, IPython and matplotlib state), and an
    # empty folder its view is built in. The supervisor removes both when the kernel has ended;
    # so does a reaper, for the case where the supervisor cannot (see _reaper).
    base = Path(tempfile.mkdtemp(prefix="vitgrade-kernel-", dir=tmp))
    _reaper(base)
    home = base / "home"
    home.mkdir()
    (base / "view").mkdir(mode=0o700)
    isolate.hand_over(home, policy)
    if "-f" in cmd:  # the connection file, where the kernel can read it
        i = cmd.index("-f") + 1
        copy = home / "connection.json"
        shutil.copyfile(cmd[i], copy)
        if policy.uid is not None:
            os.chown(copy, policy.uid, policy.uid)
        os.chmod(copy, 0o600)
        cmd[i] = str(copy)
    os.environ.update(HOME=str(home), IPYTHONDIR=str(home / ".ipython"), MPLCONFIGDIR=str(home / ".mpl"),
                      TMPDIR=str(home))
    policy.mountpoint = str(base / "view")
    policy.read_only.append(os.getcwd())  # the student's notebook folder (the kernel starts there)
    policy.writable.append(str(home))
    isolate.confine(policy, cleanup=(str(base),))
    os.execv(cmd[0], cmd)


def _reaper(folder: Path) -> None:
    """Fork a process, in its own session, that removes ``folder`` once the kernel has ended.

    A kernel manager that gives up waiting kills the kernel's whole process group with SIGKILL:
    the supervisor (which removes the folder after an ordinary exit) dies in the same instant.
    The reaper is outside that group. It waits for end-of-file on a pipe whose only writer is
    the kernel (the descriptor survives the ``exec``; the supervisor closes its copy), and end of
    file comes when the kernel and everything it started are gone, however they ended.
    """
    read_end, write_end = os.pipe()
    if os.fork() == 0:
        try:
            os.setsid()
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):  # hold none of the kernel manager's pipes
                os.dup2(null, fd)
            os.closerange(3, read_end)
            os.closerange(read_end + 1, 65536)
            while os.read(read_end, 1):
                pass
            shutil.rmtree(folder, ignore_errors=True)
        finally:
            os._exit(0)
    os.close(read_end)
    os.set_inheritable(write_end, True)


if __name__ == "__main__":
    main(sys.argv[1:])
