"""``vitgrade grade``: grade submissions against a week's hidden tests.

A submission is a folder holding ``vitcourse/`` (or ``src/vitcourse/``). Each one is graded
on its own working copy, in its own judge process, with its student code in a sandboxed
worker; ``--jobs`` grades several at once. Writes ``<out>/<student>.json`` per submission and
one gradebook (``gradebook.csv`` and ``gradebook.json``).
"""

from __future__ import annotations

import csv
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vitgrade import judge, weeks


def submission_root(path: Path) -> Path:
    for candidate in (path, path / "src"):
        if (candidate / weeks.PACKAGE).is_dir():
            return candidate
    return path  # graded as empty: every test fails with "could not import"


def grade_one(week: int, path: Path, out_dir: Path | None) -> judge.SuiteResult:
    result = judge.run(week, submission_root(path), "hidden")
    result.root = str(path)
    if out_dir is not None:
        (out_dir / f"{path.name}.json").write_text(json.dumps(result.to_json(), indent=1))
    return result


def grade_many(week: int, paths: list[Path], out_dir: Path | None, jobs: int = 1
               ) -> dict[str, judge.SuiteResult]:
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = dict(zip((p.name for p in paths),
                           pool.map(lambda p: grade_one(week, p, out_dir), paths)))
    if out_dir is not None:
        write_gradebook(week, results, out_dir)
    return results


def write_gradebook(week: int, results: dict[str, judge.SuiteResult], out_dir: Path) -> None:
    rows = [{"student": name, "week": week, "points": r.earned, "max": r.max_points,
             "status": r.status, "error": r.error} for name, r in sorted(results.items())]
    (out_dir / "gradebook.json").write_text(json.dumps(rows, indent=1))
    with open(out_dir / "gradebook.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["student"])
        writer.writeheader()
        writer.writerows(rows)


def table(result: judge.SuiteResult) -> str:
    lines = [f"{'test':<52} {'points':>7}  result"]
    for t in result.tests:
        lines.append(f"{t.name[:52]:<52} {t.earned:>3g}/{t.points:<3g}  "
                     + ("pass" if t.outcome == "passed" else f"FAIL: {t.message}"))
    lines.append(f"{'total':<52} {result.earned:>3g}/{result.max_points:<3g}")
    if result.status != "ok":
        lines.append(f"GRADING ERROR: {result.error}")
    return "\n".join(lines)
