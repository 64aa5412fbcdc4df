"""``python -m vitgrade.jail POLICY_JSON -- CMD...``: confine this process, then become CMD.

Used to start nbgrader's kernels (see :class:`vitgrade.nbtrust.JailedKernelManager`): the
kernel that runs a student's notebook gets the same limits as the sandbox worker (memory, file
size, its own session, an environment token for killing leftovers) and, where the machine
allows it, hidden grader folders and a separate uid. It keeps the network: the kernel talks to
nbgrader over ZMQ sockets on localhost.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from vitgrade import isolate, settings


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "--":
        raise SystemExit("usage: python -m vitgrade.jail POLICY_JSON -- CMD...")
    policy = isolate.Policy(**json.loads(argv[0]))
    cmd = argv[2:]
    os.environ[isolate.TOKEN_ENV] = policy.token
    threads = str(settings.threads())  # oversubscribed OpenMP threads spin: one per process
    os.environ.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    if policy.uid is not None:  # a separate uid must be able to read its connection file
        home = Path(tempfile.mkdtemp(prefix="vitgrade-kernel-"))
        isolate.hand_over(home, policy)
        if "-f" in cmd:
            i = cmd.index("-f") + 1
            copy = home / "connection.json"
            shutil.copyfile(cmd[i], copy)
            os.chown(copy, policy.uid, policy.uid)
            os.chmod(copy, 0o600)
            cmd[i] = str(copy)
        os.environ.update(HOME=str(home), IPYTHONDIR=str(home / ".ipython"),
                          MPLCONFIGDIR=str(home / ".mpl"), TMPDIR=str(home))
        # The course folder may be closed to other uids: the kernel sees its own folder at
        # an alias (a bind mount in its private mount namespace) and starts there.
        (home / "work").mkdir()
        policy.cwd_alias = str(home / "work")
    isolate.confine(policy)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
