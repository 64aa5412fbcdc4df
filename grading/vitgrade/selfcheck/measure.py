"""Measuring on a shared machine: CPU time of a whole process tree, and the machine's load meanwhile.

Wall time on a 2-core machine that other jobs share says little; the CPU time (user + sys) of
everything a measurement started says more, and the load average says whether the wall time can
be trusted. :class:`Meter` gives both for a block of code:

* **CPU**: the measurement runs in a cpuacct control group of its own (cgroup v1, as root): every
  process it starts is counted, however it ends and whoever reaps it (the zygote's children, a
  kernel's supervisor, a killed judge). Where no such group can be made, ``getrusage`` of this
  process and its reaped children stands in, and ``cpu_source`` says that it misses what other
  processes reap (marked partial).
* **load**: the 1-minute load average before, and sampled every 2 s during the block. A figure is
  *under load* when the machine was busy before it started (load above 0.5), or when the load
  during it exceeded what the measurement itself runs (``own``, e.g. its ``--jobs``) by more than
  0.75: other jobs then shared the cores, and its wall time is longer than on a quiet machine.
"""

from __future__ import annotations

import os
import resource
import secrets
import threading
import time
from pathlib import Path

CPUACCT = Path("/sys/fs/cgroup/cpuacct")


def _own_cpuacct() -> Path | None:
    """This process's cpuacct group (cgroup v1), or None."""
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, names, path = line.split(":", 2)
            if "cpuacct" in names.split(","):
                folder = CPUACCT / path.lstrip("/")
                return folder if (folder / "cgroup.procs").exists() else None
    except (OSError, ValueError):
        pass
    return None


class Meter:
    """``with Meter(own=2) as m: ...``; then ``m.wall``, ``m.cpu``, ``m.describe()``."""

    def __init__(self, own: float = 1.0) -> None:
        self.own = own
        self.wall = self.cpu = 0.0
        self.cpu_source = ""
        self.load_before = self.load_mean = self.load_max = 0.0
        self._group: Path | None = None
        self._samples: list[float] = []
        self._stop = threading.Event()

    # -- CPU
    def _enter_group(self) -> None:
        self._home = _own_cpuacct()
        if os.geteuid() != 0 or self._home is None:
            return
        try:
            group = self._home / f"vitgrade-meter-{secrets.token_hex(4)}"  # inside ours: an outer meter counts it
            group.mkdir()
            (group / "cgroup.procs").write_text(str(os.getpid()))  # this process: its threads and children follow
            self._group = group
        except OSError:
            self._group = None

    def _usage(self) -> float:
        if self._group is not None:
            return int((self._group / "cpuacct.usage").read_text()) / 1e9
        me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime

    def _leave_group(self) -> None:
        if self._group is None:
            return
        try:
            (self._home / "cgroup.procs").write_text(str(os.getpid()))  # back where it was, every thread
        except OSError:
            pass
        for _ in range(50):  # processes that are still ending keep the group busy a moment
            try:
                self._group.rmdir()
                break
            except OSError:
                time.sleep(0.1)

    # -- load
    def _sample(self) -> None:
        while not self._stop.wait(2.0):
            self._samples.append(os.getloadavg()[0])

    def __enter__(self) -> Meter:
        self.load_before = os.getloadavg()[0]
        self._enter_group()
        self.cpu_source = "cpuacct" if self._group is not None else "rusage (partial)"
        self._cpu0, self._wall0 = self._usage(), time.monotonic()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.monotonic() - self._wall0
        self.cpu = self._usage() - self._cpu0
        self._stop.set()
        self._thread.join()
        self._samples.append(os.getloadavg()[0])
        self.load_mean = sum(self._samples) / len(self._samples)
        self.load_max = max(self._samples)
        self._leave_group()

    @property
    def under_load(self) -> bool:
        return self.load_before > 0.5 or self.load_mean > self.own + 0.75

    def describe(self) -> str:
        mark = "UNDER LOAD" if self.under_load else "quiet"
        return (f"{self.wall:.1f} s wall, {self.cpu:.1f} s CPU ({self.cpu_source}); load {self.load_before:.2f} "
                f"before, {self.load_mean:.2f} mean / {self.load_max:.2f} max during: {mark}")

    def to_json(self) -> dict:
        return {"wall_s": round(self.wall, 2), "cpu_s": round(self.cpu, 2), "cpu_source": self.cpu_source,
                "load_before": round(self.load_before, 2), "load_mean": round(self.load_mean, 2),
                "load_max": round(self.load_max, 2), "under_load": self.under_load}
