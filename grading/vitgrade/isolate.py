"""Operating-system isolation for student code: what a sandboxed process may see, write and reach.

:func:`confine` runs in a freshly forked child just before it ``exec``s the student's process (the
sandbox worker, or an nbgrader kernel through :mod:`vitgrade.jail`). It always applies:

* its own session (``setsid``), so killing the group takes everything it started;
* ``RLIMIT_AS`` (memory), ``RLIMIT_FSIZE`` (largest file it may write or print), no core dumps;
* an environment token, so processes it leaves behind can be found and killed.

and, where the operating system allows it (see :func:`level`):

* ``root`` (a grading container or VM): a private network namespace (no network at all), a private
  mount namespace in which the grader's files are covered by empty read-only mounts, and a
  dedicated unprivileged uid per sandbox (it cannot write the grader's files, signal the
  grader, or read its memory; leftovers are killed by uid);
* ``userns`` (an ordinary user where unprivileged user namespaces are enabled): the same
  network and mount namespaces, keeping the grader's uid (the covered paths are still hidden;
  everything else it can write is checked by hashes, see :mod:`vitgrade.integrity`);
* ``basic`` (e.g. a hardened CI runner): rlimits and process groups only; hashes still detect any
  write outside the working copy, and the verdict never depends on the student's process.

The grader's own processes call :func:`protect_self` (``PR_SET_DUMPABLE=0``): a process of the
same uid can then neither open their file descriptors through ``/proc`` nor read their memory.
"""

from __future__ import annotations

import ctypes
import functools
import os
import resource
import secrets
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
PR_SET_DUMPABLE = 4
PR_SET_PDEATHSIG = 1
TOKEN_ENV = "VITGRADE_SANDBOX_TOKEN"
UID_BASE = 200_000  # sandbox uids are UID_BASE + a free slot; no such user needs to exist
LEVEL_ENV = "VITGRADE_ISOLATION"  # force "basic" (or "userns") for testing the fallbacks


@dataclass
class Policy:
    memory_mb: int = 6144
    fsize_bytes: int = 32 * 2**20
    hide: list[str] = field(default_factory=list)  # paths covered by empty read-only mounts
    token: str = field(default_factory=lambda: secrets.token_hex(8))
    uid: int | None = None  # the sandbox uid at level "root"
    level: str = "basic"
    network: bool = False  # True keeps the host network (a Jupyter kernel talks ZMQ over TCP)
    cwd_alias: str | None = None  # bind the working directory here (reachable by the sandbox uid)


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


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    enc = (lambda s: s.encode() if s is not None else None)
    if _libc().mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def _enter_userns(network: bool = False) -> None:
    uid, gid = os.getuid(), os.getgid()
    _unshare(CLONE_NEWUSER | CLONE_NEWNS | (0 if network else CLONE_NEWNET))
    Path("/proc/self/setgroups").write_text("deny")
    # Keep the same (non-zero) id inside: after exec the process holds no capabilities, so it
    # cannot undo the mounts made below.
    Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
    Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")


@functools.lru_cache(maxsize=1)
def level() -> str:
    """The strongest isolation this machine allows: 'root', 'userns' or 'basic' (probed once)."""
    forced = os.environ.get(LEVEL_ENV, "")
    if forced in ("basic", "userns", "root"):
        return forced
    if not os.path.exists("/proc/self/ns/net"):
        return "basic"
    wanted = "root" if os.geteuid() == 0 else "userns"
    pid = os.fork()
    if pid == 0:  # the child only tries and reports with its exit status
        try:
            if wanted == "root":
                _unshare(CLONE_NEWNS | CLONE_NEWNET)
            else:
                _enter_userns()
            _mount(None, "/", None, MS_REC | MS_PRIVATE, None)
            _mount("tmpfs", "/mnt", "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k,mode=555")
            os._exit(0)
        except BaseException:  # noqa: BLE001
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return wanted if os.waitstatus_to_exitcode(status) == 0 else "basic"


def describe(lvl: str | None = None) -> str:
    lvl = lvl or level()
    return {
        "root": "separate uid, no network, grader files hidden, rlimits",
        "userns": "no network, grader files hidden, rlimits (same uid: writes detected by hashes)",
        "basic": "rlimits and process groups only (no namespaces here: network not isolated, "
                 "writes outside the working copy detected by hashes, not prevented)",
    }[lvl]


def new_policy(memory_mb: int, fsize_bytes: int, hide: list[str | Path], network: bool = False) -> Policy:
    lvl = level()
    policy = Policy(memory_mb=memory_mb, fsize_bytes=fsize_bytes, level=lvl, network=network,
                    hide=sorted({str(p) for p in hide if os.path.exists(p)}))
    if lvl == "root":
        policy.uid = UID_BASE + (os.getpid() * 64 + secrets.randbelow(64)) % 3_000_000
    return policy


def confine(policy: Policy) -> None:
    """Apply ``policy`` to the current (child) process. Call after fork, before exec."""
    try:
        os.setsid()
    except PermissionError:  # already a session leader (a kernel started with its own session)
        pass
    resource.setrlimit(resource.RLIMIT_AS, (policy.memory_mb * 2**20,) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (policy.fsize_bytes,) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if policy.level == "basic":
        die_with_parent()
        return
    if policy.level == "root":
        _unshare(CLONE_NEWNS | (0 if policy.network else CLONE_NEWNET))
    else:
        _enter_userns(policy.network)
    _mount(None, "/", None, MS_REC | MS_PRIVATE, None)
    for path in policy.hide:
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                   "size=4k,mode=555")
        elif os.path.exists(path):
            _mount("/dev/null", path, None, MS_BIND, None)
    if policy.cwd_alias and policy.level == "root":
        _mount(os.getcwd(), policy.cwd_alias, None, MS_BIND | MS_REC, None)
        os.chdir(policy.cwd_alias)
    if policy.level == "root" and policy.uid is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (512, 512))  # per uid: this sandbox only
        os.setgroups([])
        os.setgid(policy.uid)
        os.setuid(policy.uid)
    die_with_parent()  # after the uid change, which clears it


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
        if policy.uid is not None and _uid(proc) == policy.uid:
            return True
        if userns and os.readlink(proc / "ns" / "user") == userns:
            return True
        return f"{TOKEN_ENV}={policy.token}".encode() in (proc / "environ").read_bytes()
    except OSError:
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
