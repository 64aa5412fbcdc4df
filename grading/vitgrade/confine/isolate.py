"""Operating-system isolation for student code: what a sandboxed process may see, write and reach.

:func:`confine` runs in the process that is about to become student code: a sandbox worker
forked by the zygote (:mod:`vitgrade.confine.zygote`), or an nbgrader kernel before
:mod:`vitgrade.confine.jail` ``exec``s it. It always applies:

* its submission's control group (``Policy.cgroups``, made by the grader: memory, processes and
  CPU share for all the submission's processes together, :mod:`vitgrade.confine.limits`), joined
  first, so everything it starts is counted;
* ``oom_score_adj`` 1000: if the machine itself runs out of memory, student code goes first (the
  fork server is at -1000, :class:`vitgrade.confine.zygote.Zygote`);
* its own session (``setsid``), so killing the group takes everything it started;
* ``RLIMIT_AS`` (memory), ``RLIMIT_FSIZE`` (largest file it may write or print), no core dumps, and
  where no cgroup counts its processes, ``RLIMIT_NPROC``;
* an environment token, so processes it leaves behind can be found and killed;
* last, ``no_new_privs`` and a system-call filter (:mod:`vitgrade.confine.seccomp`: no new
  namespaces, no mount, ptrace, bpf, keyctl or perf events), inherited by everything it starts.

and, where the operating system allows it (see :func:`level`):

* ``root`` (a grading container or VM): private mount, PID, IPC and (for the worker) network
  namespaces; an **allow-list view** of the file system (:mod:`vitgrade.confine.view`: the Python
  installation, the system libraries, the submission's working copy and its scratch folders,
  ``/dev/null``, ``/dev/zero``, ``/dev/urandom`` and a private ``/proc``; nothing else exists); and
  a dedicated unprivileged uid per sandbox (it cannot write the grader's files, signal the
  grader, or read its memory);
* ``userns`` (an ordinary user where unprivileged user namespaces are enabled): the same
  namespaces and the same view, keeping the grader's uid and dropping every capability (so the
  view cannot be undone); what it may write inside the view is checked by hashes
  (:mod:`vitgrade.judging.integrity`);
* ``basic`` (e.g. a hardened CI runner): rlimits and process groups only. **Reads are not
  confined**: student code can read every file the grader's uid can read, so grade only on a
  machine that holds no other copy of the course. Hashes still detect any write outside the
  working copy, and the verdict never depends on the student's process.

With a PID namespace the confined process is PID 1 of its own namespace: when it ends, the kernel
kills everything it started. A small supervisor stays outside (in the original PID namespace),
forwards signals to it and exits the way it exited, so its parent sees an ordinary child.

The grader's own processes call :func:`protect_self` (``PR_SET_DUMPABLE=0``): a process of the
same uid can then neither open their file descriptors through ``/proc`` nor read their memory.
"""

from __future__ import annotations

import ctypes
import functools
import os
import resource
import secrets
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from vitgrade.confine import seccomp, view

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
PR_SET_DUMPABLE = 4
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
TOKEN_ENV = "VITGRADE_SANDBOX_TOKEN"
UID_BASE = 200_000  # sandbox uids are UID_BASE + a free slot; no such user needs to exist
LEVEL_ENV = "VITGRADE_ISOLATION"  # force "basic" (or "userns") for testing the fallbacks


@dataclass
class Policy:
    memory_mb: int = 6144
    fsize_bytes: int = 32 * 2**20
    token: str = field(default_factory=lambda: secrets.token_hex(8))
    uid: int | None = None  # the sandbox uid at level "root"
    level: str = "basic"
    network: bool = False  # True keeps the host network (a Jupyter kernel talks ZMQ over TCP)
    # The allow-list view (levels root and userns): an empty folder to build the new root in,
    # and the host paths visible in it, read-only and writable (see vitgrade.confine.view).
    mountpoint: str | None = None
    read_only: list[str] = field(default_factory=list)
    writable: list[str] = field(default_factory=list)
    # The submission's control group: the cgroup.procs files to join (vitgrade.confine.limits).
    cgroups: list[str] = field(default_factory=list)
    processes: int | None = None  # where no cgroup counts them: RLIMIT_NPROC allows this many more
    oom_score_adj: int = 1000
    seccomp: bool = True
    scratch: str | None = None  # jail: where to make the kernel's folders (its submission's own disk)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def protect_self() -> None:
    """Make this (grader) process non-dumpable: same-uid processes cannot reach its fds or memory."""
    try:
        _libc().prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def die_with_parent() -> None:
    """In a child: get SIGKILL when the parent dies (a killed grader leaves no judge behind)."""
    try:
        _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _unshare(flags: int) -> None:
    if _libc().unshare(flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare: {os.strerror(err)}")


def _enter_userns(flags: int) -> None:
    uid, gid = os.getuid(), os.getgid()
    _unshare(CLONE_NEWUSER | flags)
    Path("/proc/self/setgroups").write_text("deny")
    # Keep the same (non-zero) id inside; the capabilities the new namespace grants are dropped
    # (see _drop_capabilities) once the view is built, so the view cannot be undone.
    Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
    Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_capabilities() -> None:
    """Give up every capability (those a new user namespace grants included), for good."""
    libc = _libc()
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3: two 32-bit words
    data = (_CapData * 2)()
    if libc.capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")


def _supervise(cleanup: tuple[str, ...] = ()) -> None:
    """Fork: the child (PID 1 of the new PID namespace) returns and goes on; this process stays
    outside as its supervisor, forwards signals, removes ``cleanup`` when the child is gone, and
    exits the way the child exited."""
    pid = os.fork()
    if pid == 0:
        return
    for fd in range(3, 1024):  # hold nothing the child's peers wait on (pipes must see EOF)
        try:
            os.close(fd)
        except OSError:
            pass
    for sig in FORWARDED:
        signal.signal(sig, lambda s, _f: os.kill(pid, s))
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        os._exit(70)
    for path in cleanup:
        shutil.rmtree(path, ignore_errors=True)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 70)


@functools.lru_cache(maxsize=1)
def level() -> str:
    """The strongest isolation this machine allows: 'root', 'userns' or 'basic' (probed once)."""
    forced = os.environ.get(LEVEL_ENV, "")
    if forced in ("basic", "userns", "root"):
        return forced
    if not os.path.exists("/proc/self/ns/net"):
        return "basic"
    wanted = "root" if os.geteuid() == 0 else "userns"
    import tempfile

    probe = tempfile.mkdtemp(prefix="vitgrade-probe-")
    pid = os.fork()
    if pid == 0:  # the child only tries and reports with its exit status
        try:
            _unshare(CLONE_NEWPID) if wanted == "root" else _enter_userns(CLONE_NEWPID)
            _supervise()  # from here on: PID 1 of the new namespace
            _unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC)
            view.enter(probe, view.python_paths() + view.system_paths(), [])
            os._exit(0 if os.path.isdir(sys.prefix) and not os.path.exists(probe) else 1)
        except BaseException:  # noqa: BLE001
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    os.rmdir(probe)
    return wanted if os.waitstatus_to_exitcode(status) == 0 else "basic"


VIEW = "allow-list view built with mount namespaces and pivot_root (vitgrade.confine.view)"


def describe(lvl: str | None = None) -> str:
    lvl = lvl or level()
    filtered = ("no_new_privs and a system-call filter (vitgrade.confine.seccomp)" if seccomp.supported()
                else f"no system-call filter on {os.uname().machine}")
    return {
        "root": f"separate uid, no network, own PID namespace, {VIEW}, rlimits, {filtered}",
        "userns": f"no network, own PID namespace, no capabilities, {VIEW}, rlimits, {filtered} "
                  "(same uid: writes inside the view detected by hashes)",
        "basic": f"rlimits and process groups only, {filtered} (no namespaces here: network not isolated, "
                 "writes outside the working copy detected by hashes, not prevented)",
    }[lvl]


BASIC_WARNING = ("WARNING: isolation level 'basic': student code can READ every file this user can "
                 "read (other copies of the course, other students' work). Grade only on a machine "
                 "that holds no other copy of the course, or where namespaces are allowed.")


def new_policy(memory_mb: int, fsize_bytes: int, read_only: list[str | Path] = (),
               writable: list[str | Path] = (), mountpoint: str | Path | None = None,
               network: bool = False, packages: tuple[str, ...] | None = None) -> Policy:
    """A policy for this machine's level; the view holds the Python installation, the system
    libraries and the grading tool's own package (read-only) plus the paths given. With
    ``packages`` (import names) it holds the standard library and only those installed packages
    and what they require (:func:`vitgrade.confine.view.package_paths`), not the whole installation."""
    lvl = level()
    grading_tool = str(Path(__file__).resolve().parents[1])  # vitgrade/ itself, not its repository
    python = (view.python_paths() if packages is None
              else view.stdlib_paths() + list(view.package_paths(tuple(packages))))
    policy = Policy(memory_mb=memory_mb, fsize_bytes=fsize_bytes, level=lvl, network=network,
                    mountpoint=str(mountpoint) if mountpoint else None,
                    read_only=python + view.system_paths() + [grading_tool]
                    + [str(p) for p in read_only],
                    writable=[str(p) for p in writable])
    if lvl == "root":
        policy.uid = UID_BASE + (os.getpid() * 64 + secrets.randbelow(64)) % 3_000_000
    return policy


def confine(policy: Policy, cleanup: tuple[str, ...] = ()) -> None:
    """Apply ``policy`` to the current process (forked for it; single-threaded). At levels root and
    userns this process then continues as PID 1 of a new PID namespace, inside the view, and
    its original pid belongs to the supervisor, which removes ``cleanup`` (host paths) once the
    confined process has ended (see the module docstring)."""
    _join(policy)
    try:
        os.setsid()
    except PermissionError:  # already a session leader (a kernel started with its own session)
        pass
    resource.setrlimit(resource.RLIMIT_AS, (policy.memory_mb * 2**20,) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (policy.fsize_bytes,) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if policy.level == "basic":
        _count_processes(policy)
        die_with_parent()
        _harden(policy)
        return
    cwd = os.getcwd()
    # The PID namespace first, then the supervisor (it stays in the grader's mount namespace, so
    # it can clean up), then the child's own mount, IPC and network namespaces.
    if policy.level == "root":
        _unshare(CLONE_NEWPID)
    else:
        _enter_userns(CLONE_NEWPID)
    die_with_parent()
    _supervise(cleanup)
    _unshare(CLONE_NEWNS | CLONE_NEWIPC | (0 if policy.network else CLONE_NEWNET))
    if policy.mountpoint:
        view.enter(policy.mountpoint, policy.read_only, policy.writable)
        os.chdir(cwd)  # the same path inside the view (it must be one of the listed paths)
    if policy.level == "root" and policy.uid is not None:
        limit = policy.processes or 512
        resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))  # per uid: this sandbox only
        os.setgroups([])
        os.setgid(policy.uid)
        os.setuid(policy.uid)  # a non-root uid: every capability goes with it
    else:
        _count_processes(policy)
        _drop_capabilities()
    die_with_parent()  # after the uid change, which clears it
    _harden(policy)


def _join(policy: Policy) -> None:
    """Join the submission's control group (before anything else, so every child is counted) and
    make this process the out-of-memory killer's first choice."""
    for procs in policy.cgroups:
        with open(procs, "w") as fh:
            fh.write(str(os.getpid()))
    try:
        with open("/proc/self/oom_score_adj", "w") as fh:
            fh.write(str(policy.oom_score_adj))
    except OSError:
        pass


def _count_processes(policy: Policy) -> None:
    """Where no cgroup counts the submission's processes: ``RLIMIT_NPROC``. It counts every process
    of the uid, here the grader's own too, so they are added to the allowance."""
    if not policy.processes:
        return
    mine = sum(1 for p in os.listdir("/proc") if p.isdigit() and _owner(p) == os.getuid())
    limit = mine + policy.processes
    try:
        resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))
    except (ValueError, OSError):
        pass


def _owner(pid: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def _harden(policy: Policy) -> None:
    """The last step of confinement: no_new_privs and the system-call filter."""
    if policy.seccomp and seccomp.supported():
        seccomp.install()
    else:
        _libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def hand_over(path: Path, policy: Policy, mode: int = 0o700) -> None:
    """Give the sandbox uid a folder it may write (no-op unless the level is 'root')."""
    if policy.uid is not None:
        os.chown(path, policy.uid, policy.uid)
    os.chmod(path, mode)


def _uid(proc: Path) -> int | None:
    for line in (proc / "status").read_text().splitlines():  # real uid, even if non-dumpable
        if line.startswith("Uid:"):
            return int(line.split()[1])
    return None


def _matches(pid: str, policy: Policy, userns: str | None) -> bool:
    proc = Path("/proc") / pid
    try:
        if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX":
            return False  # already dead, waiting for its parent: nothing to kill (and nothing to wait for)
        if policy.uid is not None and _uid(proc) == policy.uid:
            return True
        if userns and os.readlink(proc / "ns" / "user") == userns:
            return True
        return f"{TOKEN_ENV}={policy.token}".encode() in (proc / "environ").read_bytes()
    except (OSError, IndexError):
        return False


def kill_leftovers(policy: Policy, userns: str | None = None) -> int:
    """Kill every process the sandbox left behind (by uid, user namespace, or token)."""
    killed = 0
    for _ in range(3):  # a second pass catches children forked while the first was killing
        found = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()
                 and _matches(p, policy, userns)]
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
        if not found:
            break
        time.sleep(0.05)
    return killed
