"""An allow-list view of the file system: student code sees only what it needs.

:func:`enter` runs in a process that already has a private mount namespace (and a private PID
namespace, for its own ``/proc``). It builds a new root on a small tmpfs and moves the process
into it (``pivot_root``); the old root is then detached, so no path leads back to it. The new
root holds only:

* the paths listed read-only (the Python installation and its packages, the system libraries,
  the submission's working copy, the probe code),
* the paths listed writable (the worker's scratch folder, its reply channel),
* ``/dev/null``, ``/dev/zero`` and ``/dev/urandom``, and a fresh ``/proc`` of its own PID namespace,

each at the same path as outside (symbolic links such as Debian's ``/lib -> usr/lib`` are
recreated), so imports and file names need no translation. Everything else on the disk (other
copies of the course, other students' work, ``/home``, ``/root``, caches, credentials) does not
exist for the process. Folders the view creates to hold those paths are fresh and world-readable:
a package installed under a closed home folder (``/root/.pyenv``) is reachable for the sandbox
uid without opening the home folder itself.

This is what bubblewrap (``bwrap --ro-bind ... --proc /proc``) does; it is built here with the
same system calls because the worker is forked from a process that has already imported torch,
and bubblewrap can only start a new program.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
import sysconfig
from pathlib import Path

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 32, 4096, 8192, 16384, 1 << 18
MNT_DETACH = 2
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom")
OLD = ".old-root"


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = (lambda s: s.encode() if s is not None else None)
    if _libc().mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def _pivot_root(new_root: str, put_old: str) -> None:
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(f"pivot_root: unknown system call number on {platform.machine()}")
    if _libc().syscall(number, new_root.encode(), put_old.encode()) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"pivot_root: {os.strerror(err)}")


def python_paths() -> list[str]:
    """The Python installation and every package folder on ``sys.path`` (read-only in the view)."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sysconfig.get_paths()["stdlib"]}
    paths |= {p for p in sys.path if p and os.path.isdir(p) and "site-packages" in p}
    return sorted(os.path.realpath(p) for p in paths if os.path.exists(p))


def stdlib_paths() -> list[str]:
    """The standard library (and its compiled modules): all of the Python installation a process
    forked from a running interpreter needs, besides the packages it may import."""
    base = {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}  # not a virtual environment's
    paths = {sysconfig.get_paths(vars=base)[k] for k in ("stdlib", "platstdlib")}
    return sorted(os.path.realpath(p) for p in paths if os.path.exists(p))


def _site_folders() -> list[str]:
    return sorted({os.path.realpath(p) for p in sys.path if p and os.path.isdir(p) and "site-packages" in p})


_PACKAGE_PATHS: dict[tuple[str, ...], tuple[str, ...]] = {}  # this process's answers (half a second each)


def remember_package_paths(import_names: tuple[str, ...], paths: tuple[str, ...]) -> None:
    """Take :func:`package_paths`'s answer from another process of the same installation (the
    zygote's worker template works it out while the zygote imports the judges' modules)."""
    _PACKAGE_PATHS[tuple(import_names)] = tuple(paths)


def package_paths(import_names: tuple[str, ...]) -> tuple[str, ...]:
    """The files and folders, directly inside a site-packages folder, of the distributions that
    provide ``import_names`` and of everything they require (extras excluded): an allow-list of
    installed packages. Anything else installed (timm, open_clip, pytorch_grad_cam, ...) is not
    in a view built from these paths."""
    key = tuple(import_names)
    if key not in _PACKAGE_PATHS:
        _PACKAGE_PATHS[key] = _package_paths(key)
    return _PACKAGE_PATHS[key]


def _package_paths(import_names: tuple[str, ...]) -> tuple[str, ...]:
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    providers = _providers()
    wanted = [canonicalize_name(d) for name in import_names for d in providers.get(name, [])]
    missing = [name for name in import_names if name not in providers]
    if missing:
        raise LookupError(f"no installed distribution provides {', '.join(missing)}")
    found: dict[str, metadata.Distribution] = {}
    while wanted:
        name = wanted.pop()
        if name in found:
            continue
        try:
            found[name] = dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional requirement that is not installed
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                wanted.append(canonicalize_name(req.name))
    sites = _site_folders()
    paths = set()
    for dist in found.values():
        base = os.path.realpath(str(dist.locate_file("")))
        if base not in sites:
            continue
        for entry in dist.files or []:
            top = entry.parts[0]
            if top in ("..", "__pycache__") or top.endswith(".pth"):
                continue
            paths.add(os.path.join(base, top))
        info = getattr(dist, "_path", None)  # the .dist-info folder itself
        if info is not None:
            paths.add(os.path.realpath(str(info)))
    return tuple(sorted(p for p in paths if os.path.lexists(p)))


_INSTALLED: list[tuple[str, ...]] = []  # this process's answer (half a second)
_PROVIDERS: list[dict[str, list[str]]] = []


def _providers() -> dict[str, list[str]]:
    """importlib.metadata.packages_distributions(), read once per process (it reads every installed
    distribution's file list: half a second)."""
    if not _PROVIDERS:
        from importlib import metadata

        _PROVIDERS.append(metadata.packages_distributions())
    return _PROVIDERS[0]


def installed_names() -> tuple[str, ...]:
    """Every top-level name an installed distribution provides (timm, torch, yaml, ...)."""
    if not _INSTALLED:
        _INSTALLED.append(tuple(sorted(_providers())))
    return _INSTALLED[0]


def remember_installed_names(names: tuple[str, ...]) -> None:
    """Take :func:`installed_names`'s answer from another process of the same installation."""
    _INSTALLED[:] = [tuple(names)]


def system_paths() -> list[str]:
    """System libraries: ``/usr`` (and the ``/lib``, ``/bin`` links into it), the loader cache."""
    found = [p for p in ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc/ld.so.cache",
                         "/etc/localtime") if os.path.lexists(p)]
    return found


def _mkdirs(root: str, path: str) -> str:
    target = root + path
    os.makedirs(target, mode=0o755, exist_ok=True)
    return target


def _expose(root: str, path: str, writable: bool) -> None:
    """Make host ``path`` visible at the same path under ``root`` (links recreated, not followed)."""
    path = os.path.abspath(path)
    if os.path.islink(path):  # e.g. /lib -> usr/lib: the same link, and what it points to
        link = os.readlink(path)
        _mkdirs(root, os.path.dirname(path))
        if not os.path.lexists(root + path):
            os.symlink(link, root + path)
        if not os.path.exists(root + os.path.realpath(path)):
            _expose(root, os.path.realpath(path), writable)
        return
    if not os.path.exists(path) or os.path.exists(root + path) and os.path.ismount(root + path):
        return
    if os.path.isdir(path):
        target = _mkdirs(root, path)
    else:
        _mkdirs(root, os.path.dirname(path))
        target = root + path
        if not os.path.exists(target):
            Path(target).touch(mode=0o644)
    mount(path, target, None, MS_BIND | MS_REC)
    flags = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | (0 if writable else MS_RDONLY)
    mount(None, target, None, flags)


def enter(mountpoint: str, read_only: list[str], writable: list[str], proc: bool = True) -> None:
    """Replace this process's root with a tmpfs at ``mountpoint`` (an empty folder) that holds only
    the listed paths (see the module docstring). Needs a private mount namespace (and a private PID
    namespace for ``proc``), and the capability to mount in it."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", mountpoint, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=755")
    wanted = {os.path.abspath(p): False for p in read_only}
    wanted.update({os.path.abspath(p): True for p in writable})
    done: dict[str, bool] = {}
    for path, rw in sorted(wanted.items()):
        real = os.path.realpath(path)
        covered = any((real + "/").startswith(d + "/") and done[d] == rw for d in done)
        if not covered or os.path.islink(path):
            _expose(mountpoint, path, rw)
            done[real] = rw
    for device in DEVICES:
        if os.path.exists(device):
            _mkdirs(mountpoint, "/dev")
            Path(mountpoint + device).touch(mode=0o666)
            mount(device, mountpoint + device, None, MS_BIND)
    if proc:
        _mkdirs(mountpoint, "/proc")
        mount("proc", mountpoint + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.makedirs(mountpoint + "/" + OLD, mode=0o700, exist_ok=True)
    _pivot_root(mountpoint, mountpoint + "/" + OLD)
    os.chdir("/")
    if _libc().umount2(("/" + OLD).encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount old root: {os.strerror(err)}")
    os.rmdir("/" + OLD)
    mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)  # nothing new at the top


def listing(path: str = "/") -> list[str]:
    """What a process sees at ``path`` (for the isolation report): names, folders marked with /."""
    try:
        names = sorted(os.listdir(path))
    except OSError as exc:
        return [f"<{exc.strerror}>"]
    return [n + ("/" if os.path.isdir(os.path.join(path, n)) and not os.path.islink(os.path.join(path, n))
                 else "") for n in names]
