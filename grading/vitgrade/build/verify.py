"""``vitgrade verify``: the course checks itself.

Per week: the reference solution passes every public and hidden test; the generated stub
fails every one of them; every mutant in the zoo fails at least one hidden test. Plus: every
generated file is in sync with its source. One summary line per week.

A week that grades its notebook (``Week.notebook_tasks``) is graded the way a submission is: the
reference package with the reference notebook executed here (at ``VIT_SCALE``; an error in it is a
problem), the stub with the untouched student notebook (no outputs), each package mutant with the
executed reference notebook, and each ``*.notebook`` mutant (a mistake in the report) with the
reference package.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from vitgrade import weeks
from vitgrade.build import generate, mutants, notebooks, submissions
from vitgrade.judging import integrity, judge
from vitgrade.judging.results import SuiteResult


@dataclass
class WeekReport:
    week: int
    solution: dict[str, tuple[int, int]] = field(default_factory=dict)  # suite -> (passed, total)
    stub: dict[str, tuple[int, int]] = field(default_factory=dict)  # suite -> (failed, total)
    mutants_caught: list[str] = field(default_factory=list)
    mutants_missed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    hidden_seconds: float = 0.0
    notebook_seconds: float = 0.0  # the reference notebook's run, for a week that grades its notebook

    @property
    def ok(self) -> bool:
        return (not self.problems and not self.mutants_missed
                and all(p == t and t > 0 for p, t in self.solution.values())
                and all(f == t and t > 0 for f, t in self.stub.values()))

    def line(self) -> str:
        sol = ", ".join(f"{s} {p}/{t}" for s, (p, t) in self.solution.items())
        stub = ", ".join(f"{s} {f}/{t}" for s, (f, t) in self.stub.items())
        n = len(self.mutants_caught) + len(self.mutants_missed)
        status = "OK  " if self.ok else "FAIL"
        notebook = f" | reference notebook {self.notebook_seconds:.0f} s" if self.notebook_seconds else ""
        return (f"{status} week {self.week:02d}: solution passes {sol} | stub fails {stub} | "
                f"mutants caught {len(self.mutants_caught)}/{n} | hidden suite "
                f"{self.hidden_seconds:.1f} s{notebook}")


def _count(result: SuiteResult, outcome: str) -> tuple[int, int]:
    hits = sum(1 for t in result.tests if (t.outcome == "passed") == (outcome == "passed"))
    return hits, len(result.tests)


def verify_week(number: int, jobs: int = 2, zygote: str | None = None) -> WeekReport:
    """Solution and stub through both suites, then every mutant with ``-x``, cheapest tests first
    (the order is the solution's own test durations): a mutant is caught by its first failure."""
    week = weeks.get(number)
    report = WeekReport(number)
    runs = {("solution", "hidden"): weeks.SOLUTIONS, ("solution", "public"): weeks.SOLUTIONS,
            ("stub", "hidden"): weeks.STUDENT_PACKAGE.parent, ("stub", "public"): weeks.STUDENT_PACKAGE.parent}
    with tempfile.TemporaryDirectory(prefix="vitgrade-mutants-") as tmp, judge.zygote_for(number, zygote) as address, \
            ThreadPoolExecutor(max_workers=jobs) as pool:
        executed = pool.submit(_reference_notebook, number, report) if week.notebook_tasks else None

        def graded(root: Path, notebook: bytes | None = None, origin: Path | None = None) -> Path | integrity.Snapshot:
            """What the hidden suite grades: the folder, or for a week that grades its notebook, a snapshot of
            its package with ``notebook`` (default: the executed reference notebook)."""
            if executed is None:
                return root
            snap = integrity.Snapshot.take(Path(root) / weeks.PACKAGE, origin or root)
            snap.notebook = notebook if notebook is not None else executed.result()
            return snap

        if executed is not None:  # the stub with the untouched student notebook; the reference waits for its own
            runs[("stub", "hidden")] = graded(runs[("stub", "hidden")], week.student_notebook.read_bytes())
            runs[("solution", "hidden")] = runs.pop(("solution", "hidden"))  # submitted last
        futures = {}
        for key, root in runs.items():
            root = graded(root) if key == ("solution", "hidden") else root
            futures[key] = pool.submit(judge.run, number, root, key[1], zygote=address)
        reference = futures[("solution", "hidden")].result()
        order = {t.nodeid: t.duration for t in reference.tests}
        mutant_futures = {}
        for mutant in mutants.load(number):
            try:
                root = submissions.make(Path(tmp) / mutant.name, "solution", mutant)
            except ValueError as exc:
                report.problems.append(str(exc))
                report.mutants_missed.append(mutant.name)
                continue
            mutant_futures[mutant.name] = pool.submit(judge.run, number, graded(root), "hidden", exitfirst=True,
                                                      order=order, zygote=address)
        for mutant in mutants.load_notebooks(number):
            try:
                edited = Path(tmp) / f"{mutant.name}.ipynb"
                edited.write_bytes(executed.result() if executed is not None else b"")
                mutant.apply(edited)
            except (ValueError, KeyError, StopIteration, OSError) as exc:
                report.problems.append(f"notebook mutant {mutant.name} does not apply: {type(exc).__name__}: {exc}")
                report.mutants_missed.append(mutant.name)
                continue
            root = graded(weeks.SOLUTIONS, edited.read_bytes(), edited.with_suffix(""))
            mutant_futures[mutant.name] = pool.submit(judge.run, number, root, "hidden", exitfirst=True, order=order,
                                                      zygote=address)
        for (who, suite), future in futures.items():
            result = future.result()
            if result.status != "ok":
                report.problems.append(f"{who}/{suite}: {result.error}")
            if who == "solution":
                report.solution[suite] = _count(result, "passed")
                if suite == "hidden":
                    report.hidden_seconds = result.seconds
                for t in result.tests:
                    if t.outcome != "passed":
                        report.problems.append(f"solution fails {suite} {t.name}: {t.message}")
            else:
                report.stub[suite] = _count(result, "failed")
                for t in result.tests:
                    if t.outcome == "passed":
                        report.problems.append(f"stub passes {suite} {t.name}")
        for name, future in mutant_futures.items():
            result = future.result()
            caught = result.status == "ok" and any(t.outcome != "passed" for t in result.tests)
            (report.mutants_caught if caught else report.mutants_missed).append(name)
            if result.status != "ok":
                report.problems.append(f"mutant {name}: {result.error}")
    if not week.modules:
        report.problems.append("week has no modules")
    return report


def _reference_notebook(number: int, report: WeekReport) -> bytes:
    """The week's reference notebook executed at ``VIT_SCALE`` (its excavations and other files go where its
    own run puts them); an error in a cell is a problem of the week, and so is a run that does not say
    its scale (the checks of tests/course/test_notebooks.py, which leaves such a week to this run)."""
    nb, seconds, errors = notebooks.execute(number, timeout=900)
    report.notebook_seconds = seconds
    report.problems += [f"reference notebook: {error}" for error in errors]
    if missing := notebooks.scale_missing(nb):
        report.problems.append(f"reference notebook: {missing}")
    return nbformat.writes(nb).encode()


def verify(numbers: list[int], jobs: int = 2) -> tuple[bool, list[str]]:
    lines = []
    stale = generate.stale_files()
    lines.append("OK   generated files in sync" if not stale
                 else "FAIL generated files are stale (run `vitgrade sync`): " + ", ".join(stale))
    ok = not stale
    for number in numbers:
        report = verify_week(number, jobs)
        lines.append(report.line())
        lines.extend(f"       - {p}" for p in report.problems)
        lines.extend(f"       - mutant not caught: {m}" for m in report.mutants_missed)
        ok &= report.ok
    return ok, lines
