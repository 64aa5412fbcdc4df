"""Grading settings, from environment variables so every process of a grading run agrees.

=========================  =======  ==========================================================
variable                   default  meaning
=========================  =======  ==========================================================
VITGRADE_TIMEOUT           30       seconds one call into the student's code may take
VITGRADE_IMPORT_TIMEOUT    60       seconds importing the student's package may take
VITGRADE_TIME_SCALE        1.0      multiplies every timeout above and every per-test timeout
VITGRADE_BUDGET            600      seconds of the student's code per submission, all calls
                                    together; later calls fail at once ("time budget")
VITGRADE_THREADS           1        torch threads in the student's process and the judge (one
                                    per process: run --jobs = number of cores)
VITGRADE_MEMORY_MB         6144     address-space limit of each of the student's processes (and
                                    of the kernel's)
VITGRADE_GROUP_MEMORY_MB   6144     memory of all of a submission's processes together, what it
                                    keeps on its disk quota included (cgroup; see
                                    vitgrade.confine.limits)
VITGRADE_PROCESSES         256      processes and threads of a submission, all together (cgroup)
VITGRADE_CPUS              1        CPU share of a submission, in cores (cgroup CFS quota)
VITGRADE_DISK_MB           512      a submission's own disk (a tmpfs, as root; vitgrade.confine.scratch)
VITGRADE_MESSAGE_MB        512      largest message (decoded arrays) the judge accepts from the
                                    student's process
VITGRADE_CELL_TIMEOUT      120      nbgrader: seconds one notebook cell may run in the kernel
VITGRADE_NOTEBOOK_BUDGET   600      nbgrader: seconds for the whole notebook; later cells skipped
VITGRADE_EXECUTE           all      nbgrader: 'all' re-runs the student's notebook in the jailed
                                    kernel (nbgrader's behaviour); 'none' skips the kernel: the
                                    score is the same verdict, the autograded notebook keeps no
                                    outputs except the graded cells' (about 2x the throughput)
VITGRADE_WARM_KERNELS      1        nbgrader: 1 forks each notebook's kernel from the batch's fork
                                    server (ipykernel, torch and the notebook's imports loaded
                                    once, vitgrade.confine.jail); 0 starts a fresh Python each
VITGRADE_COURSE_RUNS       1        nbgrader, notebooks re-run: a training the course ships a run of
                                    (data/runs: Week 3's SMOKE recipes, same recipe, data, seed and
                                    teacher) is read from it, read-only, instead of trained again;
                                    the notebook's line says so. 0: every student's code trains
                                    (Week 3: about 70 s of CPU a student instead of 10)
VITGRADE_OVERLAP           1        nbgrader: the hidden suite (on the snapshot taken before the
                                    kernel starts) runs while the kernel re-runs the notebook; 0:
                                    after it, as nbgrader's own steps are ordered
VITGRADE_JUDGE_TIMEOUT     900      seconds for the whole hidden suite of one submission
VITGRADE_MIN_LONG_TIMEOUT  60       a test's own longer timeout (a training run) is never scaled
                                    below this by VITGRADE_TIME_SCALE < 1
VITGRADE_NOTEBOOK_MB       64       a submitted notebook larger than this is not read (it is
                                    almost all saved output); the release notebook stands in
VITGRADE_NOTEBOOK_CELLS    5000     ... nor one with more cells than this
VITGRADE_NOTEBOOK_SECONDS  30       ... nor one whose reading and repair takes longer than this
VITGRADE_ISOLATION         (probe)  force 'basic' / 'userns' / 'root' (see vitgrade.isolate)
VITGRADE_LIMITS            (probe)  'rlimit' forces per-process limits only (no cgroups, no tmpfs)
=========================  =======  ==========================================================

The zoo of broken submissions (``grading/zoo``) runs with ``VITGRADE_TIME_SCALE=0.25``,
``VITGRADE_TIMEOUT=12`` and ``VITGRADE_IMPORT_TIMEOUT=40`` (3 s a call, 10 s an import) so that
its infinite loops cost seconds, not minutes.
"""

from __future__ import annotations

import os

# The settings a judge passes on (an allow-list: nothing else of the grader's environment).
NAMES = ("VITGRADE_TIMEOUT", "VITGRADE_IMPORT_TIMEOUT", "VITGRADE_TIME_SCALE", "VITGRADE_BUDGET", "VITGRADE_THREADS",
         "VITGRADE_MEMORY_MB", "VITGRADE_CELL_TIMEOUT", "VITGRADE_NOTEBOOK_BUDGET", "VITGRADE_EXECUTE",
         "VITGRADE_WARM_KERNELS",
         "VITGRADE_JUDGE_TIMEOUT", "VITGRADE_MIN_LONG_TIMEOUT", "VITGRADE_NOTEBOOK_MB", "VITGRADE_ISOLATION",
         "VITGRADE_GROUP_MEMORY_MB", "VITGRADE_PROCESSES", "VITGRADE_CPUS", "VITGRADE_DISK_MB", "VITGRADE_MESSAGE_MB",
         "VITGRADE_NOTEBOOK_CELLS", "VITGRADE_NOTEBOOK_SECONDS", "VITGRADE_LIMITS",
         "VIT_SCALE", "VIT_OFFLINE", "VIT_DATA_DIR")


def _on(name: str) -> bool:
    """A switch that is on unless set to 0, false, no or off."""
    return os.environ.get(name, "1").strip().lower() not in ("0", "false", "no", "off")


def _float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def time_scale() -> float:
    return max(0.01, _float("VITGRADE_TIME_SCALE", 1.0))


def call_timeout() -> float:
    return _float("VITGRADE_TIMEOUT", 30.0)


def import_timeout() -> float:
    return _float("VITGRADE_IMPORT_TIMEOUT", 60.0)


def submission_budget() -> float:
    return _float("VITGRADE_BUDGET", 600.0)


def threads() -> int:
    return max(1, int(_float("VITGRADE_THREADS", 1)))


def memory_mb() -> int:
    return int(_float("VITGRADE_MEMORY_MB", 6144))


def cell_timeout() -> int:
    return max(5, int(_float("VITGRADE_CELL_TIMEOUT", 120) * time_scale()))


def notebook_budget() -> float:
    return _float("VITGRADE_NOTEBOOK_BUDGET", 600) * time_scale()


def execute_notebook() -> bool:
    value = os.environ.get("VITGRADE_EXECUTE", "all").strip().lower()
    if value not in ("all", "none"):
        raise ValueError(f"VITGRADE_EXECUTE must be 'all' or 'none', not {value!r}")
    return value == "all"


def warm_kernels() -> bool:
    return _on("VITGRADE_WARM_KERNELS")


def course_runs() -> str | None:
    """The folder of the course's own runs for re-run notebooks' kernels (``VIT_COURSE_RUNS`` there), or None
    (``VITGRADE_COURSE_RUNS=0``). An instructor's own ``VIT_COURSE_RUNS`` folder is used as it is."""
    if not _on("VITGRADE_COURSE_RUNS"):
        return None
    own = os.environ.get("VIT_COURSE_RUNS", "").strip()
    if os.path.isabs(own):
        return own
    from vitgrade import weeks

    shipped = weeks.REPO / "data" / "runs"
    return str(shipped) if shipped.is_dir() else None


def overlap_judge() -> bool:
    return _on("VITGRADE_OVERLAP")


def judge_timeout() -> float:
    return _float("VITGRADE_JUDGE_TIMEOUT", 900)


def min_long_timeout() -> float:
    return _float("VITGRADE_MIN_LONG_TIMEOUT", 60)


def notebook_mb() -> float:
    return _float("VITGRADE_NOTEBOOK_MB", 64)


def group_memory_mb() -> int:
    return int(_float("VITGRADE_GROUP_MEMORY_MB", 6144))


def processes() -> int:
    return max(8, int(_float("VITGRADE_PROCESSES", 256)))


def cpus() -> float:
    return max(0.05, _float("VITGRADE_CPUS", 1.0))


def disk_mb() -> int:
    return max(1, int(_float("VITGRADE_DISK_MB", 512)))


def message_mb() -> float:
    return _float("VITGRADE_MESSAGE_MB", 512)


def notebook_cells() -> int:
    return int(_float("VITGRADE_NOTEBOOK_CELLS", 5000))


def notebook_seconds() -> float:
    return _float("VITGRADE_NOTEBOOK_SECONDS", 30)
