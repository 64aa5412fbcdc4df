"""``vitgrade bench``: grade N generated submissions through both paths and report throughput.

The N submissions of a week are generated from their single sources, in a fixed order: the
reference solution (about 40 %), every mutant in ``tests/mutants`` in turn (about 35 %), the zoo
of broken and hostile submissions (about 15 %, except ``loop_in_forward``, whose per-test
timeouts would dominate at the default settings) and the untouched stub (about 10 %).

* ``vitgrade`` path: one ``vitgrade grade --jobs J`` batch (one judge and one sandboxed worker
  per submission, J at a time) writing one gradebook.
* ``nbgrader`` path: a fresh course, one ``nbgrader autograde --student`` process per student,
  J at a time, trusted verdicts (:mod:`vitgrade.nbtrust`), then ``nbgrader export``. Each
  student submits the release notebook with their package (the score comes from the package;
  the notebook's own cells still run in the jailed kernel, unless ``VITGRADE_EXECUTE=none``).

Every student's points are checked (:func:`expected`) and, with both paths, compared between
them; ``vitgrade bench`` exits 1 if any is off.

Not a timed test: run it by hand, e.g. ``vitgrade bench --n 100 --jobs 2``.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from vitgrade.build import mutants
from vitgrade.selfcheck import zoo

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
    every copy of it. Returns one line per student that breaks the rule."""
    from vitgrade.build.generate import task_points

    full = round(sum(task_points(week).values()), 6)
    wrong, per_mutant = [], {}
    for sid, entry in students:
        got = points.get(sid)
        if entry.kind == "stub":
            want = 0.0
        elif entry.mutant is None:
            want = full
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
    start = time.monotonic()
    run = grade.grade_many(week, paths, workdir / "out", jobs)
    seconds = time.monotonic() - start
    return {"path": "vitgrade", "n": len(paths), "jobs": jobs, "seconds": round(seconds, 1),
            "per_minute": round(60 * len(paths) / seconds, 2), "ok": run.ok,
            "not_graded_cleanly": run.failed, "tampering": run.tampering,
            "points": {n: r.earned for n, r in run.results.items()}}


def bench_nbgrader(week: int, students: list[tuple[str, zoo.Entry]], course: Path, jobs: int) -> dict:
    from vitgrade.autograde import pipeline as nbp

    zoo.nbgrader_course(week, students, course)
    start = time.monotonic()
    report = nbp.autograde_checked(week, [sid for sid, _ in students], jobs, course)
    seconds = time.monotonic() - start
    return {"path": "nbgrader", "n": len(students), "jobs": jobs, "seconds": round(seconds, 1),
            "per_minute": round(60 * len(students) / seconds, 2), "ok": report.ok,
            "problems": report.problems, "tampering": report.tampering,
            "points": {sid: (r.verdict or {}).get("earned") for sid, r in report.runs.items()}}


def run(week: int, n: int, jobs: int, out: Path, paths: tuple[str, ...] = ("vitgrade", "nbgrader")) -> list[dict]:
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
            results.append(bench_nbgrader(week, students, work / "course", jobs))
        results[-1]["unexpected"] = expected(week, students, results[-1]["points"])
        (out / f"bench-{path}.json").write_text(json.dumps(results[-1], indent=1))
    if len(results) == 2:  # both paths must agree on every student's points
        a, b = (r["points"] for r in results)
        results.append({"path": "agreement", "disagree": sorted(s for s in a if a[s] != b.get(s))})
    return results
