"""Limits per submission, for all of its processes together: memory, processes, CPU share (cgroups).

A submission's code may start many processes: forty of 100 MB each stay under any per-process
limit and still exhaust a machine, and the out-of-memory killer then picks whatever it likes
(in one measured batch: the shared fork server, and nobody was graded). So every process of one
submission (its sandbox worker, or its nbgrader kernel, and everything they start) joins one
control group, created by the grader, with

* ``memory`` (``VITGRADE_GROUP_MEMORY_MB``): resident memory of all of them together, including
  what they keep on their disk quota (a tmpfs, :mod:`vitgrade.confine.scratch`); above it the
  kernel's out-of-memory killer acts inside the group only, and the grader reports
  "ran out of memory" for the call during which it did;
* ``pids`` (``VITGRADE_PROCESSES``): processes and threads together; a fork beyond it fails;
* ``cpu`` (``VITGRADE_CPUS``): at most this many cores' worth of CPU time (CFS quota), however
  many threads spin.

Where the controllers are: cgroup v1 hierarchies the grader may write (as root, as on a grading
VM), or the unified (v2) hierarchy where it is delegated to the grader (``systemd-run --scope -p
Delegate=yes``, a container with its own cgroup namespace). Each controller is looked up on its
own (hybrid machines mount some in v1, some in v2). Groups are made below the grader's *own*
cgroup of each controller, so a container's or job's limits stay above them. Where no controller
can be used, :func:`mode` is ``"rlimit"``: every process keeps its own limits
(:mod:`vitgrade.confine.isolate`: address space, file size, and as root a per-uid process count),
and :func:`describe` says which totals are not bounded.

A grading batch makes one group (:class:`BatchGroups`) and, inside it, one per submission
(:class:`Group`); both are removed when they end, after every process in them is killed.
``VITGRADE_LIMITS=rlimit`` forces the fallback (to test it).
"""

from __future__ import annotations

import errno
import functools
import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from vitgrade import settings

CONTROLLERS = ("memory", "pids", "cpu")
PREFIX = "vitgrade-"
CFS_PERIOD_US = 100_000
FORCE_ENV = "VITGRADE_LIMITS"


@dataclass(frozen=True)
class Limits:
    """What one submission may use, all its processes together."""

    memory_mb: int
    processes: int
    cpus: float
    disk_mb: int

    @classmethod
    def from_settings(cls) -> Limits:
        return cls(settings.group_memory_mb(), settings.processes(), settings.cpus(), settings.disk_mb())


@dataclass(frozen=True)
class Hierarchy:
    """Where one controller can be used: ``base`` is the grader's own cgroup in it."""

    controller: str
    version: int  # 1 or 2
    base: str


def _own_paths() -> dict[str, str]:
    """The grader's cgroup per v1 controller name, and under "" its v2 (unified) cgroup."""
    paths = {}
    with open("/proc/self/cgroup") as fh:
        for line in fh:
            _, names, path = line.rstrip("\n").split(":", 2)
            for name in names.split(",") if names else [""]:
                paths[name] = path
    return paths


def _mounts() -> tuple[dict[str, str], str | None]:
    """(v1 controller -> mount point, the v2 mount point) from /proc/self/mountinfo."""
    v1, v2 = {}, None
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            fields, (fstype, _source, options) = left.split(), (right.split() + ["", "", ""])[:3]
            if fstype == "cgroup":
                for option in options.split(","):
                    if option in CONTROLLERS:
                        v1.setdefault(option, fields[4])
            elif fstype == "cgroup2" and v2 is None:
                v2 = fields[4]
    return v1, v2


def _writable(folder: str) -> bool:
    """Can we make (and remove) a group in ``folder``?"""
    probe = os.path.join(folder, f"{PREFIX}probe-{os.getpid()}-{secrets.token_hex(3)}")
    try:
        os.mkdir(probe)
    except OSError:
        return False
    try:
        os.rmdir(probe)
    except OSError:
        pass
    return True


def _enable_v2(base: str, controllers: list[str]) -> list[str]:
    """Make ``controllers`` usable in child groups of ``base`` (v2 ``subtree_control``). A v2 group
    with processes in it cannot hand controllers down ("no internal processes"): the grader then
    moves itself into a leaf group of its own first. Returns the controllers that are enabled."""
    control = Path(base) / "cgroup.subtree_control"
    wanted = [c for c in controllers if c not in control.read_text().split()]
    if not wanted:
        return controllers
    line = " ".join(f"+{c}" for c in wanted)
    try:
        control.write_text(line)
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            return [c for c in controllers if c in control.read_text().split()]
        leaf = Path(base) / f"{PREFIX}grader"
        leaf.mkdir(exist_ok=True)
        (leaf / "cgroup.procs").write_text(str(os.getpid()))
        try:
            control.write_text(line)
        except OSError:
            pass
    return [c for c in controllers if c in control.read_text().split()]


@functools.lru_cache(maxsize=1)
def hierarchies() -> tuple[dict[str, Hierarchy], tuple[str, ...]]:
    """Where each controller can be used by this process, and why the others cannot (probed once)."""
    if os.environ.get(FORCE_ENV, "") == "rlimit":
        return {}, (f"{FORCE_ENV}=rlimit",)
    try:
        own, (v1, v2) = _own_paths(), _mounts()
    except OSError as exc:
        return {}, (f"cannot read this process's cgroups ({exc.strerror})",)
    found: dict[str, Hierarchy] = {}
    why = []
    for controller in CONTROLLERS:
        if controller in v1 and controller in own:
            base = os.path.normpath(v1[controller] + "/" + own[controller])
            if _writable(base):
                found[controller] = Hierarchy(controller, 1, base)
            else:
                why.append(f"{controller}: {base} is not writable")
    missing = [c for c in CONTROLLERS if c not in found]
    if missing and v2 and "" in own:
        base = os.path.normpath(v2 + "/" + own[""])
        try:
            available = (Path(base) / "cgroup.controllers").read_text().split()
            usable = [c for c in missing if c in available]
            if usable and _writable(base):
                for controller in _enable_v2(base, usable):
                    found[controller] = Hierarchy(controller, 2, base)
            elif usable:
                why.append(f"cgroup v2 at {base} is not delegated to this user")
        except OSError as exc:
            why.append(f"cgroup v2 at {base}: {exc.strerror}")
    why += [f"{c}: no cgroup controller available" for c in CONTROLLERS if c not in found
            and not any(w.startswith(c + ":") for w in why)]
    return found, tuple(why)


def mode() -> str:
    """'cgroup1', 'cgroup2', 'cgroup1+2' (hybrid) or 'rlimit' (no controller usable)."""
    found, _ = hierarchies()
    versions = sorted({h.version for h in found.values()})
    return "rlimit" if not versions else "cgroup" + "+".join(map(str, versions))


def bounded() -> set[str]:
    """The totals that are bounded here: a subset of {'memory', 'processes', 'cpu'} (disk: see
    :func:`vitgrade.confine.scratch.disk_bounded`)."""
    names = {"memory": "memory", "pids": "processes", "cpu": "cpu"}
    return {names[c] for c in hierarchies()[0]}


def describe(limits: Limits | None = None, disk: str | None = None) -> str:
    """One line for the start of a batch: which limits are in force per submission, and how."""
    limits = limits or Limits.from_settings()
    found, why = hierarchies()
    parts = []
    how = {c: f"cgroup v{h.version}" for c, h in found.items()}
    parts.append(f"memory {limits.memory_mb} MB for all its processes ({how['memory']})" if "memory" in how
                 else f"memory {settings.memory_mb()} MB address space per process only (rlimit)")
    if "pids" in how:
        parts.append(f"{limits.processes} processes and threads ({how['pids']})")
    else:
        from vitgrade.confine import isolate

        per_uid = isolate.level() == "root" or os.geteuid() != 0  # RLIMIT_NPROC never applies to root
        parts.append(f"{limits.processes} processes and threads (RLIMIT_NPROC, counted per uid)" if per_uid
                     else "processes: not bounded (root without a pids cgroup)")
    parts.append(f"{limits.cpus:g} CPU ({how['cpu']})" if "cpu" in how else "CPU share: not bounded")
    if disk:
        parts.append(disk)
    line = "per submission: " + "; ".join(parts)
    if len(found) < len(CONTROLLERS):
        line += f" [fallback: {'; '.join(why)}]"
    return line


# ------------------------------------------------------------------------------- the groups
def _write(path: str, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value)


def _read(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return ""


@dataclass
class Group:
    """One submission's control group: a folder per hierarchy (controller -> folder, version)."""

    folders: dict[str, tuple[str, int]]

    @classmethod
    def create(cls, parent: dict[str, tuple[str, int]], name: str, limits: Limits) -> Group:
        folders = {}
        try:
            for controller, (base, version) in parent.items():
                folder = os.path.join(base, name)
                os.makedirs(folder, exist_ok=True)
                folders[controller] = (folder, version)
                _configure(controller, folder, version, limits)
        except OSError:
            Group(folders).remove()
            raise
        return cls(folders)

    def to_json(self) -> dict:
        return {c: [f, v] for c, (f, v) in self.folders.items()}

    @classmethod
    def from_json(cls, data: dict) -> Group:
        return cls({c: (f, int(v)) for c, (f, v) in data.items()})

    @property
    def procs_files(self) -> list[str]:
        """What a process writes its pid into to join (each distinct folder once)."""
        return sorted({os.path.join(f, "cgroup.procs") for f, _ in self.folders.values()})

    def pids(self) -> set[int]:
        found = set()
        for path in self.procs_files:
            found |= {int(p) for p in _read(path).split()}
        return found

    def oom_kills(self) -> int:
        """How many processes the out-of-memory killer took in this group so far."""
        if "memory" not in self.folders:
            return 0
        folder, version = self.folders["memory"]
        text = _read(os.path.join(folder, "memory.events" if version == 2 else "memory.oom_control"))
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def peak_mb(self) -> float:
        if "memory" not in self.folders:
            return 0.0
        folder, version = self.folders["memory"]
        value = _read(os.path.join(folder, "memory.peak" if version == 2 else "memory.max_usage_in_bytes"))
        return int(value) / 2**20 if value.strip().isdigit() else 0.0

    def kill(self, timeout: float = 10.0) -> int:
        """SIGKILL every process in the group until it is empty (new forks are caught by the next
        round); returns how many were killed."""
        killed = 0
        deadline = time.monotonic() + timeout
        for folder, version in self.folders.values():
            if version == 2 and os.path.exists(os.path.join(folder, "cgroup.kill")):
                try:
                    _write(os.path.join(folder, "cgroup.kill"), "1")
                except OSError:
                    pass
        while (pids := self.pids() - {os.getpid()}) and time.monotonic() < deadline:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
                except OSError:
                    pass
            time.sleep(0.02)
        return killed

    def remove(self) -> list[str]:
        """Kill what is left and remove the folders; returns what could not be removed."""
        self.kill()
        problems = []
        for folder, _ in self.folders.values():
            for attempt in range(50):  # a killed process leaves its group a moment after it died
                try:
                    os.rmdir(folder)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if attempt == 49:
                        problems.append(f"cgroup {folder}: {exc.strerror}")
                    time.sleep(0.05)
        return problems


def _configure(controller: str, folder: str, version: int, limits: Limits) -> None:
    if controller == "memory":
        limit = str(limits.memory_mb * 2**20)
        if version == 1:
            _write(os.path.join(folder, "memory.limit_in_bytes"), limit)
            memsw = os.path.join(folder, "memory.memsw.limit_in_bytes")
            if os.path.exists(memsw):  # no swapping past the limit either
                _write(memsw, limit)
        else:
            _write(os.path.join(folder, "memory.max"), limit)
            if os.path.exists(os.path.join(folder, "memory.swap.max")):
                _write(os.path.join(folder, "memory.swap.max"), "0")
            if os.path.exists(os.path.join(folder, "memory.oom.group")):
                _write(os.path.join(folder, "memory.oom.group"), "1")
    elif controller == "pids":
        _write(os.path.join(folder, "pids.max"), str(limits.processes))
    elif controller == "cpu":
        quota = max(1000, int(limits.cpus * CFS_PERIOD_US))
        if version == 1:
            _write(os.path.join(folder, "cpu.cfs_period_us"), str(CFS_PERIOD_US))
            _write(os.path.join(folder, "cpu.cfs_quota_us"), str(quota))
        else:
            _write(os.path.join(folder, "cpu.max"), f"{quota} {CFS_PERIOD_US}")


def _configure_parent(folder: str, version: int, controllers: list[str]) -> None:
    """A v2 batch group hands its controllers down to the submissions' groups."""
    if version == 2:
        _write(os.path.join(folder, "cgroup.subtree_control"), " ".join(f"+{c}" for c in controllers))


@dataclass
class BatchGroups:
    """The batch's group in every usable hierarchy; submissions' groups are made inside it."""

    folders: dict[str, tuple[str, int]]

    @classmethod
    def create(cls, name: str) -> BatchGroups:
        found, _ = hierarchies()
        folders: dict[str, tuple[str, int]] = {}
        try:
            for controller, h in found.items():
                folder = os.path.join(h.base, name)
                os.makedirs(folder, exist_ok=True)
                folders[controller] = (folder, h.version)
            for folder, version in {f: v for f, v in folders.values()}.items():
                _configure_parent(folder, version, [c for c, (f, _) in folders.items() if f == folder])
        except OSError:
            BatchGroups(folders).remove()
            return cls({})
        return cls(folders)

    def to_json(self) -> dict:
        return {c: [f, v] for c, (f, v) in self.folders.items()}

    @classmethod
    def from_json(cls, data: dict) -> BatchGroups:
        return cls({c: (f, int(v)) for c, (f, v) in data.items()})

    def group(self, name: str, limits: Limits) -> Group | None:
        """A new group for one submission (None where no controller is usable)."""
        if not self.folders:
            return None
        return Group.create(self.folders, name, limits)

    def children(self) -> list[str]:
        """Submission groups still present (each folder once)."""
        found = set()
        for folder, _ in self.folders.values():
            try:
                found |= {os.path.join(folder, e.name) for e in os.scandir(folder) if e.is_dir()}
            except OSError:
                pass
        return sorted(found)

    def remove(self) -> list[str]:
        """Kill and remove every group left inside, then the batch's own; returns the problems."""
        problems = []
        for child in self.children():
            controllers = {c: (child, v) for c, (f, v) in self.folders.items() if child.startswith(f + "/")}
            problems += Group(controllers).remove()
        problems += Group(self.folders).remove()
        return problems
