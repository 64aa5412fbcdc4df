"""``python -m vitgrade.confine.jail POLICY_JSON -- CMD...``: run CMD confined (nbgrader's kernels).

Used to start nbgrader's kernels (see :class:`vitgrade.autograde.nbtrust.JailedKernelManager`):
the kernel that runs a student's notebook gets the same limits as the sandbox worker (memory,
file size, its own session, an environment token for killing leftovers) and, where the machine
allows it, the same allow-list view of the file system (its notebook folder read-only, a fresh
home folder, the Python installation; :mod:`vitgrade.confine.view`), its own PID namespace and a
separate uid. It keeps the network: the kernel talks to nbgrader over ZMQ sockets on localhost.

Two ways to the same kernel, confined by the same code (:func:`enter`):

* **warm** (a grading batch that re-runs notebooks: ``$VITGRADE_ZYGOTE`` names a fork server that
  has a kernel template, and CMD is this Python's ``-m ipykernel_launcher``): this process becomes
  a light relay. It asks the batch's zygote (:mod:`vitgrade.confine.zygote`) for a kernel, forked
  from a template that has already imported ipykernel and what the week's notebook imports (torch,
  matplotlib, ...); the child confines itself with :func:`enter` and runs the kernel in-process
  (:func:`run_kernel`). The relay forwards signals to it (SIGINT is how Jupyter interrupts a
  kernel) and exits as it exits; if the relay is killed, the zygote kills the kernel.
* **cold** (anything else): this process confines itself with :func:`enter` and ``exec``s CMD.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from vitgrade import settings
from vitgrade.confine import isolate

KEEP = ("PATH", "LANG", "LC_ALL", "TZ", "MPLBACKEND", "NBGRADER_EXECUTION", "VIT_SCALE", "VIT_OFFLINE", "VIT_DATA_DIR",
        "VIT_COURSE_RUNS")
KEEP_PREFIXES = ("JPY_", "JUPYTER_", "PYDEVD_")
INLINE = "module://matplotlib_inline.backend_inline"  # the backend ipykernel gives a kernel by default


def parse_policy(data: str | dict) -> isolate.Policy:
    return isolate.Policy(**(json.loads(data) if isinstance(data, str) else data))


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "--":
        raise SystemExit("usage: python -m vitgrade.confine.jail POLICY_JSON -- CMD...")
    cmd = argv[2:]
    from vitgrade.confine import zygote

    address = os.environ.get(zygote.ENV)
    if address and warm_kernel(cmd) and os.path.exists(os.path.join(address, "kernel")):
        raise SystemExit(relay(address, json.loads(argv[0]), cmd))
    cmd = enter(parse_policy(argv[0]), cmd)
    os.execv(cmd[0], cmd)


def warm_kernel(cmd: list[str]) -> bool:
    """CMD is what the warm path runs: this Python's ``-m ipykernel_launcher`` (the python3 kernel spec)."""
    return (len(cmd) >= 3 and cmd[1:3] == ["-m", "ipykernel_launcher"]
            and os.path.realpath(cmd[0]) == os.path.realpath(sys.executable))


def enter(policy: isolate.Policy, cmd: list[str]) -> list[str]:
    """Confine this process for ``cmd`` (a kernel started in its notebook folder, the current folder)
    and return ``cmd`` as it must run now (its connection file copied where the kernel can read it).

    The environment is narrowed to an allow-list (never the grader's credentials); at levels root
    and userns the kernel gets two folders of its own on the submission's disk (a home, and an empty
    folder its view is built in), removed when it has ended however it ended (see :func:`_reaper`)."""
    # The submission's own disk (a tmpfs the grader made, vitgrade.confine.scratch), else the
    # grader's TMPDIR, read before the environment is narrowed.
    tmp = policy.scratch or tempfile.gettempdir()
    keep = {k: v for k, v in os.environ.items() if k in KEEP or k.startswith(KEEP_PREFIXES)}
    os.environ.clear()
    os.environ.update(keep)
    os.environ[isolate.TOKEN_ENV] = policy.token
    threads = str(settings.threads())  # oversubscribed OpenMP threads spin: one per process
    os.environ.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    if policy.level == "basic":
        isolate.confine(policy)
        return cmd
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
    return cmd


def run_kernel(cmd: list[str]) -> int:
    """Run ``python -m ipykernel_launcher ARGS`` in this process (forked from the zygote's kernel
    template, confined by :func:`enter`), as that command would: the kernel's arguments in
    ``sys.argv``, its folder (the notebook's) on ``sys.path`` where IPython puts it, exit handlers
    run at the end."""
    import atexit

    for name in [n for n in sys.modules if n == "vitcourse" or n.startswith("vitcourse.")]:
        del sys.modules[name]  # the student's package comes from the notebook's folder, never from memory
    for name in [n for n, module in sys.modules.items() if module is None]:
        del sys.modules[name]  # imports the zygote blocks for itself (wandb): a notebook may use them
    # ``python -m`` put the zygote's starting folder first; ipykernel_launcher removes its own, and
    # IPython adds the current folder ('') after the standard library: the same order here.
    del sys.path[0]
    sys.argv = ["ipykernel_launcher", *cmd[3:]]
    import tempfile as child_tempfile

    child_tempfile.tempdir = None  # the kernel's TMPDIR (its home), not the template's
    if "matplotlib" in sys.modules:  # imported by the template: the kernel's own backend setting
        sys.modules["matplotlib"].rcParams["backend"] = os.environ.get("MPLBACKEND") or INLINE
    from ipykernel import kernelapp

    code = 0
    try:
        kernelapp.launch_new_instance()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    atexit._run_exitfuncs()
    return code


def relay(address: str, policy: dict, cmd: list[str]) -> int:
    """Ask the zygote at ``address`` for a warm kernel running ``cmd`` under ``policy``, in this
    folder, with this environment and these standard streams; forward signals to it; return (or
    re-raise) its exit status. The zygote kills the kernel when this process dies."""
    from vitgrade.confine import zygote

    params = {"policy": policy, "cmd": cmd, "env": dict(os.environ), "cwd": os.getcwd()}
    streams = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            streams.append(fd)
        except OSError:  # a closed standard stream: the kernel gets /dev/null there
            streams.append(os.open(os.devnull, os.O_RDWR))
    child = zygote.spawn(address, "kernel", params, streams)
    for sig in isolate.FORWARDED:
        signal.signal(sig, lambda s, _f: _send(child.pid, s))
    code = child.wait()
    if code is not None and code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return 70 if code is None else code


def _send(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


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
