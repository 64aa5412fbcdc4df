"""The grader owns every scratch folder: a batch's, and each submission's inside it.

A grading batch (``vitgrade grade``, an nbgrader autograde run, or one :func:`vitgrade.judging.judge.run`
on its own) makes a :class:`Batch`: one folder ``vitgrade-batch-*`` in the grader's temp folder and one
control group per usable hierarchy (:mod:`vitgrade.confine.limits`). Each submission gets a
:class:`Scratch` inside it:

* ``folder``: the grader's files for this submission (its working copy, the private copy of the
  tests, the judge's log, the requests sent to the sandbox, the probe code; mode 0711, owned by the
  grader);
* ``student``: the only place its code may write (the sandbox's reply and work folders, a kernel's
  home), on a **tmpfs of its own** of ``VITGRADE_DISK_MB`` (mounted by the grader where it runs as
  root, :func:`disk_bounded`): a submission that fills its disk fills its own quota, never the
  grader's temp folder, and everything it wrote is gone the moment the grader unmounts it;
* ``group``: its control group (memory, processes, CPU share for all its processes together).

The grader, not the judge, closes a submission's scratch once its judge has ended, however it
ended (its verdict, a failure, a timeout, a kill): every process in its group is killed, the
tmpfs is unmounted, the folder removed, the group removed. At the end of the batch,
:meth:`Batch.close` lists anything still there (a cleanup that failed), removes it anyway and
returns the list, which the grading command reports as a problem.

Without root (no tmpfs) the student's folder is an ordinary folder in the batch's and the disk
is bounded per file only (``RLIMIT_FSIZE``); :func:`describe` says so.
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vitgrade import settings
from vitgrade.confine import limits as limits_mod

ENV = "VITGRADE_BATCH"  # the batch (JSON) for processes that make submissions' scratch inside it
SCRATCH_ENV = "VITGRADE_SCRATCH"  # one submission's scratch (JSON), for its judge
MNT_DETACH = 2


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _mount_tmpfs(target: Path, size_mb: int) -> None:
    from vitgrade.confine import view

    view.mount("tmpfs", str(target), "tmpfs", view.MS_NOSUID | view.MS_NODEV, f"size={size_mb}m,mode=0711")


def _umount(target: Path) -> bool:
    return _libc().umount2(str(target).encode(), MNT_DETACH) == 0


def mounted_under(folder: Path) -> list[str]:
    """Mount points at or below ``folder`` in this mount namespace."""
    prefix = str(folder).rstrip("/")
    found = []
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                point = line.split()[4].replace("\\040", " ")
                if point == prefix or point.startswith(prefix + "/"):
                    found.append(point)
    except OSError:
        pass
    return found


@functools.lru_cache(maxsize=1)
def disk_bounded() -> bool:
    """Can the grader give each submission a tmpfs of its own (root, with the right to mount)?"""
    if os.environ.get(limits_mod.FORCE_ENV, "") == "rlimit" or os.geteuid() != 0:
        return False
    try:
        probe = Path(tempfile.mkdtemp(prefix="vitgrade-probe-"))
    except OSError:
        return False
    try:
        _mount_tmpfs(probe, 1)
        _umount(probe)
        return True
    except OSError:
        return False
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def describe_disk(disk_mb: int | None = None) -> str:
    disk_mb = disk_mb or settings.disk_mb()
    if disk_bounded():
        return f"disk {disk_mb} MB (its own tmpfs)"
    why = f"{limits_mod.FORCE_ENV}=rlimit" if os.environ.get(limits_mod.FORCE_ENV) == "rlimit" else \
        "a tmpfs of its own needs root"
    return f"disk: per file only (RLIMIT_FSIZE; {why})"


def describe(limits: limits_mod.Limits | None = None) -> str:
    """The ``limits:`` line: every limit per submission and how it is enforced here."""
    limits = limits or limits_mod.Limits.from_settings()
    return limits_mod.describe(limits, describe_disk(limits.disk_mb))


def bounded() -> set[str]:
    """Which totals are bounded here: {'memory', 'processes', 'cpu', 'disk'} or fewer."""
    return limits_mod.bounded() | ({"disk"} if disk_bounded() else set())


BATCH_PREFIX = "vitgrade-batch-"  # + the owner's pid + "-" + a random part: folder and groups alike


def _owner_gone(name: str) -> bool:
    """A batch whose owner (the pid in its name) no longer runs: its grader was killed."""
    try:
        pid = int(name[len(BATCH_PREFIX):].split("-", 1)[0])
    except ValueError:
        return False
    return pid != os.getpid() and not os.path.exists(f"/proc/{pid}")


def reap_stale(parent: str | Path | None = None) -> list[str]:
    """Remove what a killed grader left (its batch folders in ``parent``, their mounts, its groups):
    every batch whose owning process is gone. Returns what was removed."""
    removed = []
    top = Path(parent or tempfile.gettempdir())
    try:
        stale = [e for e in os.scandir(top) if e.name.startswith(BATCH_PREFIX) and _owner_gone(e.name)]
    except OSError:
        stale = []
    for entry in stale:
        for point in reversed(mounted_under(Path(entry.path))):
            _umount(Path(point))
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(entry.path)
    for h in limits_mod.hierarchies()[0].values():
        try:
            names = [e.name for e in os.scandir(h.base) if e.is_dir() and e.name.startswith(BATCH_PREFIX)
                     and _owner_gone(e.name)]
        except OSError:
            continue
        for name in names:
            limits_mod.BatchGroups({h.controller: (os.path.join(h.base, name), h.version)}).remove()
            removed.append(os.path.join(h.base, name))
    return removed


@dataclass
class Scratch:
    """One submission's folders and control group (see the module docstring)."""

    folder: Path
    student: Path
    group: limits_mod.Group | None
    tmpfs: bool
    disk_mb: int
    owned: bool = True  # False in the judge: the grader closes it

    def to_env(self) -> str:
        return json.dumps({"folder": str(self.folder), "student": str(self.student), "tmpfs": self.tmpfs,
                           "disk_mb": self.disk_mb, "group": self.group.to_json() if self.group else None})

    @classmethod
    def from_env(cls) -> Scratch | None:
        """The scratch the grader made for this judge (None when started on its own)."""
        text = os.environ.get(SCRATCH_ENV)
        if not text:
            return None
        data = json.loads(text)
        group = limits_mod.Group.from_json(data["group"]) if data.get("group") else None
        return cls(Path(data["folder"]), Path(data["student"]), group, bool(data["tmpfs"]), int(data["disk_mb"]),
                   owned=False)

    def oom_kills(self) -> int:
        return self.group.oom_kills() if self.group else 0

    def kill(self) -> int:
        """Kill every process of the submission (nothing outside its group is touched)."""
        return self.group.kill() if self.group else 0

    def close(self) -> list[str]:
        """Kill its processes, unmount its tmpfs, remove its folder and group; returns problems."""
        problems = []
        if self.group is not None:
            self.group.kill()
        for point in reversed(mounted_under(self.folder)):  # the tmpfs, and anything left on it
            if not _umount(Path(point)):
                problems.append(f"could not unmount {point}: {os.strerror(ctypes.get_errno())}")
        shutil.rmtree(self.folder, ignore_errors=True)
        if self.folder.exists():
            problems.append(f"could not remove {self.folder}")
        if self.group is not None:
            problems += self.group.remove()
        return problems

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.owned:
            self.close()


class Batch:
    """A grading batch's folder and control groups; submissions' scratch is made inside."""

    def __init__(self, parent: str | Path | None = None, limits: limits_mod.Limits | None = None,
                 folder: Path | None = None, groups: limits_mod.BatchGroups | None = None) -> None:
        self.limits = limits or limits_mod.Limits.from_settings()
        self.owned = folder is None
        if folder is None:
            reap_stale(parent)
            folder = Path(tempfile.mkdtemp(prefix=f"{BATCH_PREFIX}{os.getpid()}-", dir=parent))
            os.chmod(folder, 0o711)
            groups = limits_mod.BatchGroups.create(folder.name)
        self.folder = folder
        self.groups = groups or limits_mod.BatchGroups({})
        self.leftovers_found: list[str] = []  # what close() found (each a cleanup that failed)

    def to_env(self) -> str:
        return json.dumps({"folder": str(self.folder), "groups": self.groups.to_json()})

    @classmethod
    def from_env(cls) -> Batch | None:
        """The batch a grading command made for this process (nbgrader's), if any."""
        text = os.environ.get(ENV)
        if not text:
            return None
        data = json.loads(text)
        return cls(folder=Path(data["folder"]), groups=limits_mod.BatchGroups.from_json(data["groups"]))

    def scratch(self, label: str = "") -> Scratch:
        """A new submission's scratch: folder, its tmpfs (where possible), its group."""
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in label)[:40]
        folder = Path(tempfile.mkdtemp(prefix=f"sub-{safe}-" if safe else "sub-", dir=self.folder))
        os.chmod(folder, 0o711)
        student = folder / "student"
        student.mkdir(mode=0o711)
        tmpfs = False
        group = None
        try:
            if disk_bounded():
                _mount_tmpfs(student, self.limits.disk_mb)
                tmpfs = True
            group = self.groups.group(folder.name, self.limits)
        except OSError:
            Scratch(folder, student, group, tmpfs, self.limits.disk_mb).close()
            raise
        return Scratch(folder, student, group, tmpfs, self.limits.disk_mb)

    def leftovers(self) -> list[str]:
        """What is still here: submission folders, mounts, groups (each a cleanup that failed)."""
        found = [f"folder {p}" for p in sorted(self.folder.iterdir())] if self.folder.exists() else []
        found += [f"mount {m}" for m in mounted_under(self.folder) if m != str(self.folder)]
        found += [f"cgroup {c}" for c in self.groups.children()]
        return found

    def close(self) -> list[str]:
        """Report what was left, then remove everything (processes, mounts, folders, groups)."""
        if not self.owned:
            return []
        left = self.leftovers()
        self.groups.remove()  # kills every process still in a group first
        for point in reversed(mounted_under(self.folder)):
            _umount(Path(point))
        shutil.rmtree(self.folder, ignore_errors=True)
        self.owned = False  # closed once
        self.leftovers_found = left
        return left

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
