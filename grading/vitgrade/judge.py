"""Run one week's test suite against one submission and record points per test.

    python -m vitgrade.judge --week 1 --root SUBMISSION --suite hidden --json results.json

SUBMISSION is a folder holding the student's ``vitcourse/`` package. The suite runs in this
(grader's) process; the student's code runs only inside :class:`vitgrade.sandbox.Sandbox`
workers that the tests' ``student`` fixture starts. Points come from each test's marker
``@pytest.mark.task("1.2", points=2)``; a parametrised test splits its points over its cases.
The JSON holds, per test: task, points, earned, outcome and a one-line reason a student can
act on (never the test's source).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

from vitgrade import weeks

ROOT_ENV = "VITGRADE_ROOT"


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
    status: str = "ok"  # "ok", or "error" when the suite itself could not run
    error: str = ""
    seconds: float = 0.0

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
            seconds=data.get("seconds", 0.0),
        )


def one_line(text: str, limit: int = 240) -> str:
    """The first meaningful line of a failure, without pytest's source echo."""
    for line in str(text).splitlines():
        line = line.strip()
        if line and not line.startswith(("assert ", "where ", "+", "-", "E ")):
            return line[:limit]
    return "failed"


class ResultsPlugin:
    """Collects per-test outcomes with points; used in-process by :func:`main`."""

    def __init__(self) -> None:
        self.cases: dict[str, dict] = {}
        self.collect_errors: list[str] = []

    def pytest_configure(self, config: pytest.Config) -> None:
        config.addinivalue_line("markers", "task(id, points): the exercise a test grades")

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            marker = item.get_closest_marker("task")
            if marker is None:
                raise pytest.UsageError(f"{item.nodeid} has no @pytest.mark.task(...) marker")
            task = str(marker.args[0])
            points = float(marker.kwargs.get("points", 1))
            func = item.nodeid.split("[")[0]
            self.cases[item.nodeid] = dict(func=func, task=task, points=points,
                                           outcome="not run", message="", duration=0.0)

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
            exc = getattr(report, "longrepr", None)
            crash = getattr(exc, "reprcrash", None)
            message = crash.message if crash is not None else str(exc)
            message = message.split(": ", 1)[1] if message.startswith(
                ("AssertionError: ", "StudentFailure: ", "vitgrade.sandbox.StudentFailure: ")
            ) else message
            case["message"] = one_line(message)

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
                points=round(share, 6), earned=round(share, 6) if passed else 0.0,
                outcome=case["outcome"], message="" if passed else (case["message"] or case["outcome"]),
                duration=round(case["duration"], 3),
            ))
        return out


def run_in_process(week: int, root: Path, suite: str, tests_dir: Path | None = None,
                   exitfirst: bool = False, quiet: bool = True) -> SuiteResult:
    start = time.monotonic()
    tests_dir = tests_dir or weeks.suite_dir(week, suite)
    os.environ[ROOT_ENV] = str(Path(root).resolve())
    if suite == "public":  # public tests import the package directly, as a student's run does
        sys.path.insert(0, str(Path(root).resolve()))
    plugin = ResultsPlugin()
    args = [str(tests_dir), "-p", "no:cacheprovider", "-p", "no:randomly", "--timeout=300",
            "-o", "python_files=test_*.py", "--rootdir", str(tests_dir)]
    args += ["-q", "--no-header", "-rN", "--tb=no"] if quiet else ["-rfE"]
    if exitfirst:
        args.append("-x")
    code = pytest.main(args, plugins=[plugin])
    result = SuiteResult(week=week, suite=suite, root=str(root), tests=plugin.results())
    if plugin.collect_errors or code in (pytest.ExitCode.INTERNAL_ERROR,
                                         pytest.ExitCode.USAGE_ERROR):
        result.status = "error"
        result.error = "; ".join(plugin.collect_errors) or f"pytest exit code {int(code)}"
    elif not result.tests:
        result.status = "error"
        result.error = "no tests were collected"
    result.seconds = round(time.monotonic() - start, 2)
    return result


def working_copy(week: int, root: Path, dest: Path) -> Path:
    """Copy the submission's package to ``dest`` and overlay earlier weeks' reference modules.

    The student's code runs on this copy, never on the submitted files. A week that builds on
    an earlier one (``support_modules``) is graded with the reference versions of those
    modules, so a Week 1 bug does not cost points again in Week 2.
    """
    src = Path(root) / weeks.PACKAGE
    package = dest / weeks.PACKAGE
    if src.is_dir():
        shutil.copytree(src, package, symlinks=False,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    else:
        package.mkdir(parents=True)
    for name in weeks.SHARED_MODULES + weeks.get(week).support_modules:
        shutil.copy2(weeks.SOLUTION_PACKAGE / name, package / name)
    return dest


def run(week: int, root: Path, suite: str = "hidden", tests_dir: Path | None = None,
        exitfirst: bool = False, timeout: float = 900, out_json: Path | None = None,
        copy: bool = True) -> SuiteResult:
    """Run the judge in a fresh process (so repeated runs never share imported state).

    With ``copy`` (the default) the suite runs on a :func:`working_copy` of ``root``.
    """
    if copy:
        with tempfile.TemporaryDirectory(prefix="vitgrade-copy-") as tmp:
            result = run(week, working_copy(week, root, Path(tmp)), suite, tests_dir,
                         exitfirst, timeout, out_json, copy=False)
            result.root = str(root)
            return result
    tmp_json = out_json or Path(os.environ.get("TMPDIR", "/tmp")) / f"vitgrade-{os.getpid()}-{time.time_ns()}.json"
    cmd = [sys.executable, "-m", "vitgrade.judge", "--week", str(week), "--root", str(root),
           "--suite", suite, "--json", str(tmp_json)]
    if tests_dir:
        cmd += ["--tests", str(tests_dir)]
    if exitfirst:
        cmd.append("-x")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).resolve().parent.parent)] + os.environ.get("PYTHONPATH", "").split(os.pathsep)))
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        data = json.loads(tmp_json.read_text())
        result = SuiteResult.from_json(data)
    except subprocess.TimeoutExpired:
        result = SuiteResult(week=week, suite=suite, root=str(root), status="error",
                             error=f"the grader timed out after {timeout:.0f} s")
    except (OSError, json.JSONDecodeError, KeyError):
        tail = (proc.stdout + proc.stderr)[-800:] if "proc" in locals() else ""
        result = SuiteResult(week=week, suite=suite, root=str(root), status="error",
                             error=f"the grader itself failed: {tail.strip()}")
    finally:
        if out_json is None and tmp_json.exists():
            tmp_json.unlink()
    result.seconds = round(time.monotonic() - start, 2)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--week", type=int, required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--suite", choices=["hidden", "public"], default="hidden")
    parser.add_argument("--tests", type=Path, default=None)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("-x", dest="exitfirst", action="store_true")
    args = parser.parse_args(argv)
    result = run_in_process(args.week, args.root, args.suite, args.tests, args.exitfirst)
    args.json.write_text(json.dumps(result.to_json(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
