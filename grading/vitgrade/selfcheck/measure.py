"""Measuring on a shared machine: CPU time of a whole process tree, and the machine's load meanwhile.

Wall time on a 2-core machine that other jobs share says little; the CPU time (user + sys) of
everything a measurement started says more, and the load average says whether the wall time can
be trusted. :class:`Meter` gives both for a block of code:

* **CPU**: the measurement runs in a cpuacct control group of its own (cgroup v1, as root): every
  process it starts is counted, however it ends and whoever reaps it (the zygote's children, a
  kernel's supervisor, a killed judge). Where no such group can be made, ``getrusage`` of this
  process and its reaped children stands in, and ``cpu_source`` says that it misses what other
  processes reap (marked partial).
* **others**: the CPU time the whole machine spent (``/proc/stat``) minus the measurement's own:
  what other jobs took meanwhile, in cores on average; and the cores busy in the second before
  the block (nothing of the measurement runs then). A figure is *under load* when other jobs used
  more than a quarter of a core, before or during it: they shared the cores, and its wall time is
  longer than on a quiet machine. (The 1-minute load average, also reported, is no test of that:
  it still counts the previous measurement a minute later.)
* **load**: the 1-minute load average before, and sampled every 2 s during the block.
"""

from __future__ import annotations

import os
import resource
import secrets
import threading
import time
from pathlib import Path

CPUACCT = Path("/sys/fs/cgroup/cpuacct")
BUSY = 0.25  # cores other jobs may use before a figure counts as measured under load


def machine_cpu() -> float:
    """CPU seconds the whole machine has spent busy since boot (every core, not idle or iowait)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    guest = sum(fields[8:10]) if len(fields) > 9 else 0  # already counted in user and nice
    return (sum(fields) - idle - guest) / os.sysconf("SC_CLK_TCK")


def busy_cores(seconds: float = 1.0) -> float:
    """Cores busy on average over the next ``seconds`` (whatever runs on the machine)."""
    start, t0 = machine_cpu(), time.monotonic()
    time.sleep(seconds)
    return (machine_cpu() - start) / (time.monotonic() - t0)


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
        self.busy_before = self.others = 0.0  # cores other jobs used: in the second before, and during
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
        self.busy_before = busy_cores(1.0)
        self._enter_group()
        self.cpu_source = "cpuacct" if self._group is not None else "rusage (partial)"
        self._machine0 = machine_cpu()
        self._cpu0, self._wall0 = self._usage(), time.monotonic()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.monotonic() - self._wall0
        self.cpu = self._usage() - self._cpu0
        self.others = max(0.0, machine_cpu() - self._machine0 - self.cpu) / max(self.wall, 1e-9)
        self._stop.set()
        self._thread.join()
        self._samples.append(os.getloadavg()[0])
        self.load_mean = sum(self._samples) / len(self._samples)
        self.load_max = max(self._samples)
        self._leave_group()

    @property
    def under_load(self) -> bool:
        if self.cpu_source != "cpuacct":  # the own CPU is partial: fall back on the load average
            return self.load_before > 0.5 or self.load_mean > self.own + 0.75
        return self.busy_before > BUSY or self.others > BUSY

    def describe(self) -> str:
        mark = "UNDER LOAD" if self.under_load else "quiet"
        return (f"{self.wall:.1f} s wall, {self.cpu:.1f} s CPU ({self.cpu_source}); other jobs {self.busy_before:.2f} "
                f"cores before, {self.others:.2f} during; load {self.load_before:.2f} before, {self.load_mean:.2f} "
                f"mean / {self.load_max:.2f} max during: {mark}")

    def to_json(self) -> dict:
        return {"wall_s": round(self.wall, 2), "cpu_s": round(self.cpu, 2), "cpu_source": self.cpu_source,
                "load_before": round(self.load_before, 2), "load_mean": round(self.load_mean, 2),
                "load_max": round(self.load_max, 2), "busy_before": round(self.busy_before, 2),
                "others": round(self.others, 2), "under_load": self.under_load}
