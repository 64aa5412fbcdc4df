"""``vitgrade grade``: grade submissions against a week's hidden tests.

A submission is a folder holding ``vitcourse/`` (or ``src/vitcourse/``). Before any student code
runs, every submission's package is read into memory (:class:`vitgrade.integrity.Snapshot`)
and everything that must not change is hashed (the submissions, the hidden tests, the
solutions, the output folder). Each submission is then graded from its snapshot, on its own
working copy, in its own judge process, with its code in a sandboxed worker; ``--jobs`` grades
several at once. At the end the hashes are compared again: a change is tampering, reported in
the summary and the exit status. The per-student JSON files and the gradebook
(``gradebook.csv`` and ``gradebook.json``) are written once, from memory, after the last
student's code has stopped, and read back to check they say what was decided.

Notebooks are not graded here. When a submission folder holds the week's notebook (or a renamed
one), it is checked like the nbgrader path checks it (:func:`vitgrade.autograde.repair.inspect_submission`)
before any student code runs, and what was found is reported (the ``notebook`` column and JSON key,
one ``notebook`` line per finding in the summary); it never changes a score or the exit status.
"""

from __future__ import annotations

import csv
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from vitgrade import weeks
from vitgrade.confine import isolate
from vitgrade.judging import integrity, judge
from vitgrade.judging.results import SuiteResult, reason

FIELDS = ["student", "week", "points", "max", "status", "reason", "notebook"]


def submission_root(path: Path) -> Path:
    for candidate in (path, path / "src"):
        if (candidate / weeks.PACKAGE).is_dir():
            return candidate
    return path  # graded as empty: every test fails with "could not import"


@dataclass
class Run:
    week: int
    results: dict[str, SuiteResult]
    tampering: list[str] = field(default_factory=list)  # protected paths that changed
    gradebook_problems: list[str] = field(default_factory=list)
    notebooks: dict[str, list[str]] = field(default_factory=dict)  # what each notebook looked like (not graded)

    @property
    def failed(self) -> list[str]:
        return [n for n, r in self.results.items() if r.status != "ok"]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.tampering and not self.gradebook_problems


def snapshot(path: Path) -> integrity.Snapshot:
    """The submission's package as it is now, before any student code runs."""
    return integrity.Snapshot.take(submission_root(path) / weeks.PACKAGE, path)


def grade_many(week: int, paths: list[Path], out_dir: Path | None, jobs: int = 1,
               protect: list[Path] = ()) -> Run:
    isolate.protect_self()
    names = [p.name for p in paths]
    if len(set(names)) != len(names):
        raise SystemExit("two submissions have the same folder name; rename one")
    snapshots = {p.name: snapshot(p) for p in paths}
    notebooks = notebook_reports(week, paths)
    hidden = weeks.get(week).suite_dir("hidden")
    guarded = list(paths) + [hidden, weeks.SOLUTION_PACKAGE] + list(protect)
    if out_dir is not None and out_dir.exists():
        guarded.append(out_dir)
    guard = integrity.Guard(guarded)
    digest = judge.tests_digest(hidden)

    def grade_one(path: Path) -> SuiteResult:
        result = judge.run(week, snapshots[path.name], "hidden", tests_digest=digest, zygote=zygote.address)
        result.root = str(path)
        return result

    with judge.new_zygote(week) as zygote, ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = dict(zip(names, pool.map(grade_one, paths)))
    run = Run(week, results, tampering=guard.changes(), notebooks=notebooks)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, result in results.items():
            (out_dir / f"{name}.json").write_text(json.dumps({**result.to_json(), "notebook": notebooks[name]},
                                                             indent=1))
        write_gradebook(week, results, out_dir, notebooks)
        run.gradebook_problems = check_gradebook(results, out_dir)
    return run


def notebook_reports(week: int, paths: list[Path]) -> dict[str, list[str]]:
    """What each submission's notebook looks like, if it has one (nbformat is imported only then)."""
    if not any(next(p.rglob("*.ipynb"), None) for p in paths):
        return {p.name: [] for p in paths}
    from vitgrade.autograde import repair

    return {p.name: repair.inspect_submission(weeks.get(week), p) for p in paths}


def rows(week: int, results: dict[str, SuiteResult], notebooks: dict[str, list[str]] | None = None) -> list[dict]:
    return [{"student": name, "week": week, "points": r.earned, "max": r.max_points,
             "status": r.status, "reason": reason(r), "notebook": " | ".join((notebooks or {}).get(name, []))}
            for name, r in sorted(results.items())]


def write_gradebook(week: int, results: dict[str, SuiteResult], out_dir: Path,
                    notebooks: dict[str, list[str]] | None = None) -> None:
    table = rows(week, results, notebooks)
    (out_dir / "gradebook.json").write_text(json.dumps(table, indent=1))
    with open(out_dir / "gradebook.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(table)


def check_gradebook(results: dict[str, SuiteResult], out_dir: Path) -> list[str]:
    """Read the gradebook back: every student once, with the points that were decided."""
    with open(out_dir / "gradebook.csv") as fh:
        written = {row["student"]: float(row["points"]) for row in csv.DictReader(fh)}
    problems = [f"{n}: gradebook says {written.get(n)}, grader decided {r.earned}"
                for n, r in results.items() if written.get(n) != r.earned]
    problems += [f"{n}: in the gradebook but not graded" for n in set(written) - set(results)]
    return problems


def table(result: SuiteResult) -> str:
    lines = [f"{'test':<52} {'points':>7}  result"]
    for t in result.tests:
        lines.append(f"{t.name[:52]:<52} {t.earned:>3g}/{t.points:<3g}  "
                     + ("pass" if t.outcome == "passed" else f"FAIL: {t.message}"))
    lines.append(f"{'total':<52} {result.earned:>3g}/{result.max_points:<3g}")
    if result.status != "ok":
        lines.append(f"GRADING {result.status.upper()}: {result.error}")
    return "\n".join(lines)
