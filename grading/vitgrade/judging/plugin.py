"""The judge's pytest plugin: points per test, the ``student`` fixture, test order, task filter.

* Points come from each test's marker ``@pytest.mark.task("1.2", points=2)``; a parametrised test
  splits its points over its cases. A test without the marker is an error of the suite.
* ``student`` (session scope) is the submission under test (:class:`vitgrade.judging.api.Student`):
  one sandboxed worker, started on first use, cleaned up at the end.
* ``order`` (nodeid -> seconds, e.g. measured on the reference) runs the cheap tests first: with
  ``-x`` a buggy submission is usually caught in its first second.
* ``task`` keeps only one task's tests (``vitgrade check 2 --task 2.3``).
* ``refused`` (task -> reason): a task whose code breaks the week's import rule scores 0 with that
  reason, its tests not run (:mod:`vitgrade.judging.imports`).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from vitgrade.judging.results import TestResult, one_line

STRIP_PREFIXES = ("AssertionError: ", "StudentFailure: ", "vitgrade.confine.sandbox.StudentFailure: ")


class ResultsPlugin:
    def __init__(self, student_factory=None, order: dict[str, float] | None = None, task: str | None = None,
                 refused: dict[str, str] | None = None) -> None:
        self.cases: dict[str, dict] = {}
        self.collect_errors: list[str] = []
        self._factory = student_factory
        self._student = None
        self.order = order or {}
        self.task = task
        self.refused = refused or {}  # task -> why it scores 0 without running (vitgrade.judging.imports)

    def pytest_configure(self, config: pytest.Config) -> None:
        config.addinivalue_line("markers", "task(id, points): the exercise a test grades")

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        for item in items:
            if item.get_closest_marker("task") is None:
                raise pytest.UsageError(f"{item.nodeid} has no @pytest.mark.task(...) marker")
        if self.task:
            keep = [i for i in items if str(i.get_closest_marker("task").args[0]) == self.task]
            config.hook.pytest_deselected(items=[i for i in items if i not in keep])
            items[:] = keep
        if self.order:  # stable: tests never measured keep their place at the end
            slowest = max(self.order.values(), default=0.0) + 1
            items.sort(key=lambda i: self.order.get(i.nodeid, slowest))
        for item in items:
            marker = item.get_closest_marker("task")
            self.cases[item.nodeid] = dict(func=item.nodeid.split("[")[0], task=str(marker.args[0]),
                                           points=float(marker.kwargs.get("points", 1)),
                                           outcome="not run", message="", duration=0.0)

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        reason = self.refused.get(str(item.get_closest_marker("task").args[0]))
        if reason:
            raise AssertionError(reason)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collect_errors.append(f"{report.nodeid}: {one_line(report.longreprtext)}")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        case = self.cases.get(report.nodeid)
        if case is None:
            return
        case["duration"] += report.duration
        if report.when == "call" or report.failed:
            if report.failed or case["outcome"] in ("not run", "passed"):
                case["outcome"] = report.outcome if report.when == "call" else (
                    "error" if report.failed else case["outcome"])
        if report.failed and not case["message"]:
            crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
            message = crash.message if crash is not None else str(report.longrepr)
            for prefix in STRIP_PREFIXES:
                message = message.removeprefix(prefix)
            case["message"] = one_line(message)

    @pytest.fixture(scope="session")
    def student(self):
        if self._factory is None:
            raise pytest.UsageError("the student fixture exists only in hidden suites")
        self._student = self._factory()
        yield self._student
        self._student.box.cleanup()

    def results(self) -> list[TestResult]:
        n_cases: dict[str, int] = defaultdict(int)
        for case in self.cases.values():
            n_cases[case["func"]] += 1
        out = []
        for nodeid, case in self.cases.items():
            share = case["points"] / n_cases[case["func"]]
            passed = case["outcome"] == "passed"
            out.append(TestResult(
                nodeid=nodeid, name=nodeid.split("::")[-1], task=case["task"],
                # Unrounded: three cases sharing 2 points must sum to 2, not 2.000001.
                points=share, earned=share if passed else 0.0,
                outcome=case["outcome"], message="" if passed else (case["message"] or case["outcome"]),
                duration=round(case["duration"], 3),
            ))
        return out


def quoted_lines(tests_dir: Path) -> set[str]:
    """Distinctive lines of the hidden tests: a message quoting one of them is withheld."""
    lines = set()
    for path in Path(tests_dir).rglob("*.py"):
        for line in path.read_text(errors="replace").splitlines():
            line = line.strip()
            if len(line) >= 24 and not line.startswith("#"):
                lines.add(line)
    return lines


def redact(message: str, quoted: set[str]) -> str:
    """Replace a message that quotes the grader's test code (a student could exfiltrate it)."""
    if any(line in message for line in quoted):
        kind = message.split(":", 1)[0] if ":" in message[:60] else "error"
        return f"{kind}: (message withheld: it quotes the grader's test code)"
    return message
