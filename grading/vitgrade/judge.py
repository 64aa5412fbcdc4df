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
import threading
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

from vitgrade import integrity, isolate, settings, weeks
from vitgrade.sandbox import copy_tree

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
                # Unrounded: three cases sharing 2 points must sum to 2, not 2.000001.
                points=share, earned=share if passed else 0.0,
                outcome=case["outcome"], message="" if passed else (case["message"] or case["outcome"]),
                duration=round(case["duration"], 3),
            ))
        return out


def _quoted_lines(tests_dir: Path) -> set[str]:
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


def run_in_process(week: int, root: Path, suite: str, tests_dir: Path | None = None,
                   exitfirst: bool = False, quiet: bool = True) -> SuiteResult:
    start = time.monotonic()
    tests_dir = tests_dir or weeks.suite_dir(week, suite)
    os.environ[ROOT_ENV] = str(Path(root).resolve())
    if suite == "public":  # public tests import the package directly, as a student's run does
        sys.path.insert(0, str(Path(root).resolve()))
    else:
        from vitgrade import testing

        testing.snapshot_sources(Path(root))  # static checks read these, not files on disk
    quoted = _quoted_lines(tests_dir) if suite == "hidden" else set()
    plugin = ResultsPlugin()
    per_test = max(10, int(300 * settings.time_scale()))
    args = [str(tests_dir), "-p", "no:cacheprovider", "-p", "no:randomly", f"--timeout={per_test}",
            "-o", "python_files=test_*.py", "--rootdir", str(tests_dir)]
    args += ["-q", "--no-header", "-rN", "--tb=no"] if quiet else ["-rfE"]
    if exitfirst:
        args.append("-x")
    code = pytest.main(args, plugins=[plugin])
    result = SuiteResult(week=week, suite=suite, root=str(root), tests=plugin.results())
    for test in result.tests:
        test.message = redact(test.message, quoted)
    if plugin.collect_errors or code in (pytest.ExitCode.INTERNAL_ERROR,
                                         pytest.ExitCode.USAGE_ERROR):
        result.status = "error"
        result.error = "; ".join(plugin.collect_errors) or f"pytest exit code {int(code)}"
    elif not result.tests:
        result.status = "error"
        result.error = "no tests were collected"
    result.seconds = round(time.monotonic() - start, 2)
    return result


def working_copy(week: int, root: Path | integrity.Snapshot, dest: Path) -> Path:
    """Copy the submission's package to ``dest`` and overlay earlier weeks' reference modules.

    ``root`` is a submission folder, or a :class:`vitgrade.integrity.Snapshot` of its package
    taken before any student code ran. Only folders and regular files are copied (a symlink
    could point at the hidden tests).

    The student's code runs on this copy, never on the submitted files. A week that builds on
    an earlier one (``support_modules``) is graded with the reference versions of those
    modules, so a Week 1 bug does not cost points again in Week 2.
    """
    package = dest / weeks.PACKAGE
    if isinstance(root, integrity.Snapshot):
        root.write(package)
    else:
        copy_tree(Path(root) / weeks.PACKAGE, package)
    for name in weeks.SHARED_MODULES + weeks.get(week).support_modules:
        shutil.copy2(weeks.SOLUTION_PACKAGE / name, package / name)
    return dest


def run(week: int, root: Path | integrity.Snapshot, suite: str = "hidden", tests_dir: Path | None = None,
        exitfirst: bool = False, timeout: float | None = None, out_json: Path | None = None,
        copy: bool = True, tests_digest: str | None = None) -> SuiteResult:
    """Run the judge in a fresh process (so repeated runs never share imported state).

    With ``copy`` (the default) the suite runs on a :func:`working_copy` of ``root`` (a folder,
    or a snapshot taken before any student code ran), against a private copy of the tests
    (mode 0700, hidden from the student's process), and the result comes back through a pipe
    that only the judge holds, never through a file the student could forge. Afterwards the
    working copy and the tests copy are compared with their hashes from before. With
    ``tests_digest`` (see :func:`tests_digest`, taken when a batch starts) a copy of the tests
    that differs is refused: the submission is reported as not graded, never graded against
    tests another submission rewrote.
    """
    timeout = timeout or settings.judge_timeout()
    label = str(root.origin if isinstance(root, integrity.Snapshot) else root)
    if not copy:
        return _run_judge(week, Path(root), suite, tests_dir, exitfirst, timeout, out_json, label)
    tests_src = Path(tests_dir or weeks.suite_dir(week, suite))
    with tempfile.TemporaryDirectory(prefix="vitgrade-copy-") as tmp:
        tmp = Path(tmp)
        os.chmod(tmp, 0o711)  # the sandbox uid may reach its package, not list the folder
        work = working_copy(week, root, tmp / "submission")
        tests = tmp / "tests"
        copy_tree(tests_src, tests, mode=0o700)
        os.chmod(tests, 0o700)
        if tests_digest and integrity.tree_digest(integrity.hash_tree(tests)) != tests_digest:
            return SuiteResult(week=week, suite=suite, root=label, status="error",
                               error="the hidden tests changed since grading started (tampering); "
                                     "not graded, tell the instructor")
        before = integrity.hash_tree(tmp)
        result = _run_judge(week, work, suite, tests, exitfirst, timeout, out_json, label,
                            hide=[tests, tests_src])
        changed = integrity.diff(before, integrity.hash_tree(tmp))
        if changed:
            result.tampering += [f"{path} changed while grading" for path in changed]
            if result.status == "ok":
                result.status = "tampered"
                result.error = "files changed during grading: " + ", ".join(changed[:5])
        return result


def tests_digest(tests_dir: Path) -> str:
    """Digest of a hidden-test folder, as :func:`run` compares it (caches excluded)."""
    with tempfile.TemporaryDirectory(prefix="vitgrade-tests-") as tmp:
        copy_tree(Path(tests_dir), Path(tmp) / "tests")
        return integrity.tree_digest(integrity.hash_tree(Path(tmp) / "tests"))


def _run_judge(week: int, root: Path, suite: str, tests_dir: Path | None, exitfirst: bool,
               timeout: float, out_json: Path | None, label: str,
               hide: list[Path] | None = None) -> SuiteResult:
    cmd = [sys.executable, "-m", "vitgrade.judge", "--week", str(week), "--root", str(root),
           "--suite", suite]
    if tests_dir:
        cmd += ["--tests", str(tests_dir)]
    if exitfirst:
        cmd.append("-x")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).resolve().parent.parent)] + os.environ.get("PYTHONPATH", "").split(os.pathsep)))
    if hide:
        env["VITGRADE_HIDE"] = os.pathsep.join([env.get("VITGRADE_HIDE", "")] + [str(p) for p in hide])
    read_fd, write_fd = os.pipe()
    cmd.append(f"--result-fd={write_fd}")
    start = time.monotonic()
    chunks: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(read_fd, chunks), daemon=True)
    reader.start()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                              pass_fds=(write_fd,), stdin=subprocess.DEVNULL,
                              preexec_fn=isolate.die_with_parent)
        os.close(write_fd)
        write_fd = -1
        reader.join(10)
        result = SuiteResult.from_json(json.loads(b"".join(chunks)))
    except subprocess.TimeoutExpired:
        result = SuiteResult(week=week, suite=suite, root=label, status="error",
                             error=f"the grader timed out after {timeout:.0f} s")
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        tail = (proc.stdout + proc.stderr)[-800:] if "proc" in locals() else ""
        result = SuiteResult(week=week, suite=suite, root=label, status="error",
                             error=f"the grader itself failed: {tail.strip()}")
    finally:
        if write_fd >= 0:
            os.close(write_fd)
    result.root = label
    result.seconds = round(time.monotonic() - start, 2)
    if out_json is not None:
        Path(out_json).write_text(json.dumps(result.to_json(), indent=1))
    return result


def _drain(fd: int, chunks: list[bytes]) -> None:
    with os.fdopen(fd, "rb") as pipe:
        while chunk := pipe.read(65536):
            chunks.append(chunk)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--week", type=int, required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--suite", choices=["hidden", "public"], default="hidden")
    parser.add_argument("--tests", type=Path, default=None)
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument("--result-fd", type=int, help="write the result to this pipe (private)")
    parser.add_argument("-x", dest="exitfirst", action="store_true")
    args = parser.parse_args(argv)
    isolate.protect_self()  # the student's process (same uid) cannot open our fds via /proc
    import torch

    torch.set_num_threads(settings.threads())  # references are small; leave the cores to workers
    result_pipe = os.fdopen(args.result_fd, "w") if args.result_fd is not None else None
    # Nothing of the student's may inherit the pipe: the sandbox closes every other fd anyway.
    if args.result_fd is not None:
        os.set_inheritable(args.result_fd, False)
    result = run_in_process(args.week, args.root, args.suite, args.tests, args.exitfirst)
    text = json.dumps(result.to_json(), indent=1)
    if args.json:
        args.json.write_text(text)
    if result_pipe is not None:
        result_pipe.write(text)
        result_pipe.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
