"""What a judge decides: per-test points and reasons, and the one way they are summarised.

Every place that shows a grade (``vitgrade grade``'s table, ``vitgrade check``, the nbgrader cells
filled by :mod:`vitgrade.autograde.nbtrust`, an instructor's ``grade_task`` call) formats it
with :func:`task_report`, so a student reads the same lines wherever they look.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field


@dataclass
class TestResult:
    nodeid: str
    name: str
    task: str
    points: float
    earned: float
    outcome: str
    message: str
    duration: float


@dataclass
class SuiteResult:
    week: int
    suite: str
    root: str
    tests: list[TestResult] = field(default_factory=list)
    status: str = "ok"  # "ok"; "error" when the suite could not run; "tampered" (see below)
    error: str = ""
    seconds: float = 0.0
    # Files that changed while this submission was graded and must not have (its own package,
    # the private copy of the hidden tests). The points stay those of the honest verdict (the
    # tests were collected and the sources read before any student code ran); the submission
    # is flagged for the instructor and the grading command exits non-zero.
    tampering: list[str] = field(default_factory=list)

    @property
    def earned(self) -> float:
        return round(sum(t.earned for t in self.tests), 6)

    @property
    def max_points(self) -> float:
        return round(sum(t.points for t in self.tests), 6)

    def by_task(self) -> dict[str, tuple[float, float]]:
        totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for t in self.tests:
            totals[t.task][0] += t.earned
            totals[t.task][1] += t.points
        return {k: (round(v[0], 6), round(v[1], 6)) for k, v in sorted(totals.items())}

    def failed(self) -> list[TestResult]:
        return [t for t in self.tests if t.outcome != "passed"]

    def to_json(self) -> dict:
        data = asdict(self)
        data.update(earned=self.earned, max=self.max_points, tasks=self.by_task())
        return data

    @classmethod
    def from_json(cls, data: dict) -> SuiteResult:
        tests = [TestResult(**t) for t in data.get("tests", [])]
        return cls(
            week=data["week"], suite=data["suite"], root=data["root"], tests=tests,
            status=data.get("status", "ok"), error=data.get("error", ""),
            seconds=data.get("seconds", 0.0), tampering=list(data.get("tampering", [])),
        )


def one_line(text: str, limit: int = 240) -> str:
    """The first meaningful line of a failure, without pytest's source echo."""
    for line in str(text).splitlines():
        line = line.strip()
        if line and not line.startswith(("assert ", "where ", "+", "-", "E ")):
            return line[:limit]
    return "failed"


def task_report(result: SuiteResult, task: str, where: str = "") -> tuple[float, list[str]]:
    """(points earned, report lines) for one task: a headline, then PASS/FAIL per test."""
    rows = [t for t in result.tests if t.task == task]
    earned = round(sum(t.earned for t in rows), 4)
    total = round(sum(t.points for t in rows), 4)
    lines = [f"Task {task}: {earned:g} / {total:g} points from {len(rows)} hidden tests" + where]
    lines += [f"  {'PASS' if t.outcome == 'passed' else 'FAIL'} {t.name}" + (f": {t.message}" if t.message else "")
              for t in rows]
    return earned, lines


def reason(result: SuiteResult) -> str:
    """One line a student can act on: the grading error, or the first failing test's reason."""
    if result.status == "error":
        return result.error
    failed = result.failed()
    text = f"{failed[0].name}: {failed[0].message}" if failed else ""
    if result.tampering:
        text = "files changed while grading (flagged for review)" + (f"; {text}" if text else "")
    return text
