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
"""

from __future__ import annotations

import csv
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from vitgrade import integrity, isolate, judge, weeks

FIELDS = ["student", "week", "points", "max", "status", "reason"]


def submission_root(path: Path) -> Path:
    for candidate in (path, path / "src"):
        if (candidate / weeks.PACKAGE).is_dir():
            return candidate
    return path  # graded as empty: every test fails with "could not import"


def reason(result: judge.SuiteResult) -> str:
    """One line a student can act on: the grading error, or the first failing test's reason."""
    if result.status == "error":
        return result.error
    failed = [t for t in result.tests if t.outcome != "passed"]
    text = f"{failed[0].name}: {failed[0].message}" if failed else ""
    if result.tampering:
        text = "files changed while grading (flagged for review)" + (f"; {text}" if text else "")
    return text


@dataclass
class Run:
    week: int
    results: dict[str, judge.SuiteResult]
    tampering: list[str] = field(default_factory=list)  # protected paths that changed
    gradebook_problems: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[str]:
        return [n for n, r in self.results.items() if r.status != "ok"]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.tampering and not self.gradebook_problems


def grade_one(week: int, path: Path, out_dir: Path | None = None,
              snapshot: integrity.Snapshot | None = None, tests_digest: str | None = None) -> judge.SuiteResult:
    source = snapshot or integrity.Snapshot.take(submission_root(path) / weeks.PACKAGE, path)
    result = judge.run(week, source, "hidden", tests_digest=tests_digest)
    result.root = str(path)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / f"{path.name}.json").write_text(json.dumps(result.to_json(), indent=1))
    return result


def grade_many(week: int, paths: list[Path], out_dir: Path | None, jobs: int = 1,
               protect: list[Path] = ()) -> Run:
    isolate.protect_self()
    names = [p.name for p in paths]
    if len(set(names)) != len(names):
        raise SystemExit("two submissions have the same folder name; rename one")
    snapshots = {p.name: integrity.Snapshot.take(submission_root(p) / weeks.PACKAGE, p) for p in paths}
    guarded = list(paths) + [weeks.suite_dir(week, "hidden"), weeks.SOLUTION_PACKAGE] + list(protect)
    if out_dir is not None and out_dir.exists():
        guarded.append(out_dir)
    guard = integrity.Guard(guarded)
    digest = judge.tests_digest(weeks.suite_dir(week, "hidden"))
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        graded = pool.map(lambda p: grade_one(week, p, None, snapshots[p.name], digest), paths)
        results = dict(zip(names, graded))
    run = Run(week, results, tampering=guard.changes())
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, result in results.items():
            (out_dir / f"{name}.json").write_text(json.dumps(result.to_json(), indent=1))
        write_gradebook(week, results, out_dir)
        run.gradebook_problems = check_gradebook(results, out_dir)
    return run


def rows(week: int, results: dict[str, judge.SuiteResult]) -> list[dict]:
    return [{"student": name, "week": week, "points": r.earned, "max": r.max_points,
             "status": r.status, "reason": reason(r)} for name, r in sorted(results.items())]


def write_gradebook(week: int, results: dict[str, judge.SuiteResult], out_dir: Path) -> None:
    table = rows(week, results)
    (out_dir / "gradebook.json").write_text(json.dumps(table, indent=1))
    with open(out_dir / "gradebook.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(table)


def check_gradebook(results: dict[str, judge.SuiteResult], out_dir: Path) -> list[str]:
    """Read the gradebook back: every student once, with the points that were decided."""
    with open(out_dir / "gradebook.csv") as fh:
        written = {row["student"]: float(row["points"]) for row in csv.DictReader(fh)}
    problems = [f"{n}: gradebook says {written.get(n)}, grader decided {r.earned}"
                for n, r in results.items() if written.get(n) != r.earned]
    problems += [f"{n}: in the gradebook but not graded" for n in set(written) - set(results)]
    return problems


def table(result: judge.SuiteResult) -> str:
    lines = [f"{'test':<52} {'points':>7}  result"]
    for t in result.tests:
        lines.append(f"{t.name[:52]:<52} {t.earned:>3g}/{t.points:<3g}  "
                     + ("pass" if t.outcome == "passed" else f"FAIL: {t.message}"))
    lines.append(f"{'total':<52} {result.earned:>3g}/{result.max_points:<3g}")
    if result.status != "ok":
        lines.append(f"GRADING {result.status.upper()}: {result.error}")
    return "\n".join(lines)
