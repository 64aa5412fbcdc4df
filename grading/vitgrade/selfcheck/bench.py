"""``vitgrade bench``: how fast grading is, measured with the machine's load.

``vitgrade bench [batch]`` (the default) grades N generated submissions of a week through both paths
and reports throughput. The N submissions are generated from their single sources, in a fixed
order: the reference solution (about 40 %), every mutant in ``tests/mutants`` in turn (about 35 %),
the zoo of broken and hostile submissions (about 15 %, except ``loop_in_forward``, whose per-test
timeouts would dominate at the default settings; a week without a zoo, more mutants instead) and the
untouched stub (about 10 %).

* ``vitgrade`` path: one ``vitgrade grade --jobs J`` batch (one judge and one sandboxed worker
  per submission, J at a time) writing one gradebook.
* ``nbgrader`` path: a fresh course, ``nbgrader autograde`` in J batches at a time, trusted verdicts
  (:mod:`vitgrade.autograde.nbtrust`), then ``nbgrader export``, at the settings in force
  (``VITGRADE_EXECUTE``: by default every notebook is re-run in its jailed kernel). Every student who
  did the work submits the notebook answered from the reference (``--answered``, the default), as a
  student who finished the week does, so the kernel runs all of it (Week 1's trainings; before
  2026-12-05 the benchmark submitted the release notebook, whose run stopped at the first unanswered
  cell); the untouched stub submits the release notebook.

Every student's points are checked (:func:`expected`) and, with both paths, compared between them.

``vitgrade bench one [WEEK...]``: one submission (the reference solution, ``vitgrade grade N solutions``)
per week, the whole command's wall time, as a user types it. ``vitgrade bench tests REPORT.xml``: the
test command's time, per week and per part of the machinery, from its JUnit report
(:mod:`vitgrade.selfcheck.testtime`). Every figure carries its CPU time and the machine's load
(:mod:`vitgrade.selfcheck.measure`); one measured while other jobs ran is marked UNDER LOAD.
``vitgrade bench`` exits 1 if any student's points are off.

Not a timed test: run it by hand, e.g. ``vitgrade bench --n 100 --jobs 2``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from vitgrade import weeks
from vitgrade.build import mutants
from vitgrade.selfcheck import zoo
from vitgrade.selfcheck.measure import Meter

SKIP_ZOO = {"loop_in_forward"}


def plan(week: int, n: int) -> list[tuple[str, zoo.Entry]]:
    """(student id, what they submit) for n students, in a fixed order."""
    muts = mutants.load(week)
    zoo_entries = [e for e in zoo.load(week, bystanders=False) if e.name not in SKIP_ZOO]
    reference = zoo.Entry("reference", "", {}, "", None)
    stub = zoo.Entry("stub", "", {}, "", None, "stub")
    pattern = ["ref", "mut", "ref", "mut", "zoo", "ref", "mut", "ref", "stub", "mut",
               "ref", "mut", "ref", "zoo", "mut", "ref", "mut", "ref", "stub", "zoo"]
    out, counts = [], {"ref": 0, "mut": 0, "zoo": 0, "stub": 0}
    for i in range(n):
        kind = pattern[i % len(pattern)]
        if kind == "zoo" and not zoo_entries:  # a week without a zoo of its own (only Week 1 has one)
            kind = "mut"
        k = counts[kind]
        counts[kind] += 1
        if kind == "ref":
            entry = reference
        elif kind == "stub":
            entry = stub
        elif kind == "mut":
            m = muts[k % len(muts)]
            entry = zoo.Entry(f"mutant-{m.name}", m.description, {}, "", m)
        else:
            entry = zoo_entries[k % len(zoo_entries)]
        out.append((f"s{i:03d}-{entry.name}", entry))
    return out


def expected(week: int, students: list[tuple[str, zoo.Entry]], points: dict[str, float | None]) -> list[str]:
    """Students whose points are not what their submission earns: the reference full marks, the
    stub 0, a zoo entry its ``# expect:`` total, a mutant less than full marks and the same for
    every copy of it. Returns one line per student that breaks the rule. A zoo entry whose score
    depends on a limit (``# needs: memory``: its ``# expect:`` holds at the zoo's 1 GB for a
    submission's processes, the benchmark runs at the defaults) is graded, and paid for, but its
    points are not checked (only that it was graded)."""
    from vitgrade.build.generate import task_points

    full = round(sum(task_points(week).values()), 6)
    wrong, per_mutant = [], {}
    for sid, entry in students:
        got = points.get(sid)
        if entry.kind == "stub":
            want = 0.0
        elif entry.mutant is None:
            want = full
        elif entry.expect and entry.needs:
            if got is None:
                wrong.append(f"{sid}: not graded")
            continue
        elif entry.expect:
            want = entry.total
        else:  # a mutant: not full marks, and every copy scores the same
            want = per_mutant.setdefault(entry.name, got)
            if got is not None and got >= full:
                wrong.append(f"{sid}: {got} (a mutant must lose points)")
                continue
        if got is None or abs(got - want) > 1e-6:
            wrong.append(f"{sid}: {got}, expected {want}")
    return wrong


def bench_vitgrade(week: int, students: list[tuple[str, zoo.Entry]], workdir: Path, jobs: int) -> dict:
    from vitgrade.judging import grade

    paths = [entry.make(workdir / "submissions" / sid) for sid, entry in students]
    with Meter(own=jobs) as meter:
        run = grade.grade_many(week, paths, workdir / "out", jobs)
    return {"path": "vitgrade", "week": week, "n": len(paths), "jobs": jobs, "seconds": round(meter.wall, 1),
            "per_minute": round(60 * len(paths) / meter.wall, 2), "cpu_per_student": round(meter.cpu / len(paths), 2),
            "meter": meter.to_json(), "ok": run.ok, "not_graded_cleanly": run.failed, "tampering": run.tampering,
            "points": {n: r.earned for n, r in run.results.items()}}


def bench_nbgrader(week: int, students: list[tuple[str, zoo.Entry]], course: Path, jobs: int,
                   answered: bool = True) -> dict:
    from vitgrade import settings
    from vitgrade.autograde import pipeline as nbp

    zoo.nbgrader_course(week, students, course, answered=answered)
    with Meter(own=jobs) as meter:
        report = nbp.autograde_checked(week, [sid for sid, _ in students], jobs, course)
    kernels = {sid: (r.verdict or {}).get("kernel", "") for sid, r in report.runs.items()}
    return {"path": "nbgrader", "week": week, "n": len(students), "jobs": jobs, "seconds": round(meter.wall, 1),
            "per_minute": round(60 * len(students) / meter.wall, 2),
            "cpu_per_student": round(meter.cpu / len(students), 2), "meter": meter.to_json(),
            "execute": "all" if settings.execute_notebook() else "none", "warm_kernels": settings.warm_kernels(),
            "answered": answered, "ok": report.ok, "problems": report.problems, "tampering": report.tampering,
            "kernel_failures": {s: k for s, k in kernels.items() if k and not k.startswith("not run (VITGRADE")},
            "points": {sid: (r.verdict or {}).get("earned") for sid, r in report.runs.items()}}


def run(week: int, n: int, jobs: int, out: Path, paths: tuple[str, ...] = ("vitgrade", "nbgrader"),
        answered: bool = True) -> list[dict]:
    out = out.resolve()  # nbgrader runs in the course folder: every path handed to it is absolute
    out.mkdir(parents=True, exist_ok=True)
    students = plan(week, n)
    results = []
    for path in paths:
        work = out / path
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        if path == "vitgrade":
            results.append(bench_vitgrade(week, students, work, jobs))
        else:
            results.append(bench_nbgrader(week, students, work / "course", jobs, answered))
        results[-1]["unexpected"] = expected(week, students, results[-1]["points"])
        (out / f"bench-{path}.json").write_text(json.dumps(results[-1], indent=1))
    if len(results) == 2:  # both paths must agree on every student's points
        a, b = (r["points"] for r in results)
        results.append({"path": "agreement", "disagree": sorted(s for s in a if a[s] != b.get(s))})
    return results


# ------------------------------------------------------------------------------------------ one submission
GRADED = re.compile(r"^(?P<name>\S+)\s+(?P<earned>[\d.]+) / (?P<max>[\d.]+)\s+(?P<status>\S+)", re.M)


def one_submission(week: int, repeat: int = 2, submission: Path | None = None) -> dict:
    """``vitgrade grade WEEK solutions`` as a user types it (a fresh process: its imports, the zygote's
    start, the judge, the teardown), ``repeat`` times; the fastest is the figure (the others were
    slowed by something else), each with its CPU time and load."""
    submission = submission or weeks.SOLUTIONS
    env = {k: v for k, v in os.environ.items() if k != "VITGRADE_ZYGOTE"}  # its own zygote, as a user's run
    runs = []
    for _ in range(repeat):
        with Meter(own=1) as meter:
            proc = subprocess.run([sys.executable, "-m", "vitgrade.cli", "grade", str(week), str(submission)],
                                  env=env, capture_output=True, text=True, timeout=900)
        found = GRADED.search(proc.stdout)
        runs.append({"meter": meter.to_json(), "returncode": proc.returncode,
                     "points": f"{found['earned']}/{found['max']}" if found else "?",
                     "status": found["status"] if found else proc.stdout[-300:] + proc.stderr[-300:]})
    best = min(runs, key=lambda r: r["meter"]["wall_s"])
    return {"week": week, "seconds": best["meter"]["wall_s"], "cpu": best["meter"]["cpu_s"],
            "under_load": best["meter"]["under_load"], "points": best["points"], "status": best["status"],
            "ok": all(r["returncode"] == 0 for r in runs), "runs": runs}


def describe_one(result: dict) -> str:
    meter = result["runs"][0]["meter"] if result["runs"] else {}
    best = min(result["runs"], key=lambda r: r["meter"]["wall_s"])["meter"]
    mark = "UNDER LOAD" if result["under_load"] else "quiet"
    return (f"week {result['week']}: {result['seconds']:.1f} s wall, {result['cpu']:.1f} s CPU, {result['points']} "
            f"{result['status']} (best of {len(result['runs'])}; other jobs {best['busy_before']:.2f} cores before, "
            f"{best['others']:.2f} during: {mark}; first run {meter.get('wall_s', 0):.1f} s)")
