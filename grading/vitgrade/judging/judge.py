"""Run one week's test suite against one submission and record points per test.

:func:`run` is the grader's call: it makes a working copy of the submission and a private copy of
the tests, asks the batch's zygote (:mod:`vitgrade.confine.zygote`) for a fresh judge process,
and reads the judge's verdict from a pipe only the two of them hold. The judge (:func:`main`,
in that process) runs the suite with pytest in-process; the student's code runs only inside the
sandboxed worker that the tests' ``student`` fixture starts (public suites import the package
directly, as a student's own ``pytest`` does). The verdict holds, per test: task, points, earned,
outcome and a one-line reason a student can act on (never the test's source).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from vitgrade import settings, weeks
from vitgrade.confine import isolate, sandbox
from vitgrade.confine import scratch as scratch_mod
from vitgrade.confine import zygote as zygote_mod
from vitgrade.confine.sandbox import Sandbox, copy_tree
from vitgrade.judging import api, imports, integrity
from vitgrade.judging.plugin import ResultsPlugin, quoted_lines, redact
from vitgrade.judging.results import SuiteResult
from vitgrade.pipes import PipeReader


# ------------------------------------------------------------------------- in the judge process
def run_in_process(week: int, root: Path, suite: str, tests_dir: Path | None = None, exitfirst: bool = False,
                   order: dict[str, float] | None = None, task: str | None = None) -> SuiteResult:
    start = time.monotonic()
    info = weeks.get(week)
    tests_dir = Path(tests_dir or info.suite_dir(suite))
    root = Path(root).resolve()
    factory = None
    refused: dict[str, str] = {}
    if suite == "public":  # public tests import the package directly, as a student's run does
        sys.path.insert(0, str(root))
    else:
        # Static checks read the sources as submitted, before any student code ran.
        sources = integrity.Snapshot.take(root / weeks.PACKAGE).files
        api.keep_sources(sources)
        api.keep_notebook(root / NOTEBOOK, root / NOTEBOOK_WHY)
        refused = imports.refused_tasks(info, sources)
        probes = api.week_probes(tests_dir)
        factory = lambda: api.Student(Sandbox(root, info.import_names, probes=probes, week=info))
    plugin = ResultsPlugin(factory, order=order, task=task, refused=refused)
    per_test = max(10, int(300 * settings.time_scale()))
    # Only the plugins a suite needs: installed ones load by default, and hypothesis's imports hypothesis
    # at the end of the session with its ~100 modules assertion-rewritten (1 s of CPU per judge).
    args = [str(tests_dir), "--disable-plugin-autoload", "-p", "pytest_timeout", "-p", "no:cacheprovider",
            "-p", "no:randomly", f"--timeout={per_test}",
            "-o", "python_files=test_*.py", "--rootdir", str(tests_dir), "-q", "--no-header", "-rN", "--tb=no",
            "--basetemp", str(Path.cwd() / "basetemp"),  # tmp_path inside the judge's private folder
            "--ignore", str(tests_dir / "probes"), "--ignore", str(tests_dir / "probes.py")]
    if exitfirst:
        args.append("-x")
    code = pytest.main(args, plugins=[plugin])
    result = SuiteResult(week=week, suite=suite, root=str(root), tests=plugin.results())
    if suite == "hidden":
        quoted = quoted_lines(tests_dir)
        for test in result.tests:
            test.message = redact(test.message, quoted)
    if plugin.collect_errors or code in (pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR):
        result.status = "error"
        result.error = "; ".join(plugin.collect_errors) or f"pytest exit code {int(code)}"
    elif not result.tests:
        result.status = "error"
        result.error = "no tests were collected"
    result.seconds = round(time.monotonic() - start, 2)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="run a week's suite (started by vitgrade.judging.judge.run)")
    parser.add_argument("--week", type=int, required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--suite", choices=["hidden", "public"], default="hidden")
    parser.add_argument("--tests", type=Path, default=None)
    parser.add_argument("--order", type=Path, help="JSON nodeid -> seconds: run the cheap tests first")
    parser.add_argument("--task", help="only this task's tests")
    parser.add_argument("--result-fd", type=int, required=True, help="write the result to this pipe (private)")
    parser.add_argument("-x", dest="exitfirst", action="store_true")
    args = parser.parse_args(argv)
    isolate.protect_self()  # the student's process (same uid) cannot open our fds via /proc
    _ordinary_oom_score()
    import torch

    torch.set_num_threads(settings.threads())  # references are small; leave the cores to workers
    os.set_inheritable(args.result_fd, False)
    result_pipe = os.fdopen(args.result_fd, "w")
    order = json.loads(args.order.read_text()) if args.order else None
    result = run_in_process(args.week, args.root, args.suite, args.tests, args.exitfirst, order, args.task)
    if sandbox.FAILURES:  # the grader's side failed under a test: no verdict, the batch grades it again
        result.status, result.error = "error", NOT_GRADED + sandbox.FAILURES[0]
    result_pipe.write(json.dumps(result.to_json()))
    result_pipe.close()
    return 0


def _ordinary_oom_score() -> None:
    """The zygote is exempt from the out-of-memory killer; its judges are ordinary processes."""
    try:
        Path("/proc/self/oom_score_adj").write_text("0")
    except OSError:
        pass


# ------------------------------------------------------------------------- in the grader process
# Beside the package in the working copy: the submitted notebook (or why there is none), for the judge
# only. The sandbox copies only the package into the student's view, and the files are the grader's (0600).
NOTEBOOK, NOTEBOOK_WHY = "submitted.ipynb", "submitted.ipynb.why"


def working_copy(week: int, root: Path | integrity.Snapshot, dest: Path) -> Path:
    """Copy the submission's package to ``dest`` and overlay earlier weeks' reference modules.

    ``root`` is a submission folder, or a :class:`vitgrade.judging.integrity.Snapshot` of its
    package taken before any student code ran. Only folders and regular files are copied (a
    symlink could point at the hidden tests). A snapshot's notebook (or why it has none) goes
    beside the package (:data:`NOTEBOOK`), for :func:`vitgrade.hidden.submitted_notebook`.

    The student's code runs on this copy, never on the submitted files. A week that builds on
    earlier ones is graded with the reference versions of their modules
    (:attr:`vitgrade.weeks.Week.support_modules`), so an old bug does not cost points again.
    """
    package = dest / weeks.PACKAGE
    if isinstance(root, integrity.Snapshot):
        root.write(package)
        for name, data in ((NOTEBOOK, root.notebook), (NOTEBOOK_WHY, root.notebook_why.encode() or None)):
            if data is not None:
                (dest / name).write_bytes(data)
                os.chmod(dest / name, 0o600)
    else:
        copy_tree(Path(root) / weeks.PACKAGE, package)
    for name in weeks.SHARED_MODULES + weeks.get(week).support_modules:
        shutil.copy2(weeks.SOLUTION_PACKAGE / name, package / name)
    return dest


ENTRY = f"{__name__}:main"  # what a judge the zygote forks runs


def new_zygote(week: int, kernel_preload: tuple[str, ...] | None = None, wait: bool = True) -> zygote_mod.Zygote:
    """The zygote for a batch of one week (:func:`vitgrade.confine.zygote.for_week`)."""
    return zygote_mod.for_week(week, kernel_preload, wait)


@contextmanager
def zygote_for(week: int, address: str | None = None):
    """The address of a zygote: the one given, the batch's (``$VITGRADE_ZYGOTE``), or a new one
    for this run alone (:func:`new_zygote`)."""
    address = address or os.environ.get(zygote_mod.ENV)
    if address:
        yield address
        return
    with new_zygote(week) as own:
        yield own.address


def judge_env(address: str) -> dict[str, str]:
    """The judge's environment: the zygote's clean one, plus the grading settings."""
    env = zygote_mod.clean_env(settings.threads())
    env.update({k: os.environ[k] for k in settings.NAMES if k in os.environ})
    env[zygote_mod.ENV] = address
    # torch's compile cache, should a reference library reach it: in the zygote's folder (removed with
    # the batch), not in TMPDIR, where the default would leave a torchinductor_<user> folder behind.
    env["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(address, "torchinductor")
    return env


def run(week: int, root: Path | integrity.Snapshot, suite: str = "hidden", tests_dir: Path | None = None,
        exitfirst: bool = False, timeout: float | None = None, copy: bool = True,
        tests_digest: str | None = None, order: dict[str, float] | None = None, task: str | None = None,
        zygote: str | None = None, batch: scratch_mod.Batch | None = None) -> SuiteResult:
    """Run the judge in a fresh process (so repeated runs never share imported state).

    With ``copy`` (the default) the suite runs on a :func:`working_copy` of ``root`` (a folder,
    or a snapshot taken before any student code ran), against a private copy of the tests
    (mode 0700, hidden from the student's process). Afterwards the working copy and the tests
    copy are compared with their hashes from before. With ``tests_digest`` (see
    :func:`tests_digest`, taken when a batch starts) a copy of the tests that differs is refused:
    the submission is reported as not graded, never graded against tests another submission
    rewrote. ``order`` and ``task``: see :class:`vitgrade.judging.plugin.ResultsPlugin`.

    Everything of one run lives in the submission's scratch (:mod:`vitgrade.confine.scratch`,
    inside ``batch``, the grading command's, or a batch of its own): the copies, the judge's files,
    the sandbox's folders on the submission's own disk quota, its control group. This process
    removes it after the judge has ended, however it ended. When the grader's side fails (its own
    files, a judge or fork server that died, a judge that timed out) the result has status
    ``"error"`` and an error starting with ``"not graded: "`` (:func:`not_graded`): no verdict,
    never a score of the student's.
    """
    timeout = timeout or settings.judge_timeout()
    label = str(root.origin if isinstance(root, integrity.Snapshot) else root)
    tests_src = Path(tests_dir or weeks.get(week).suite_dir(suite))
    try:
        if not copy:  # a student's own run of the public tests: no sandbox, no scratch
            with tempfile.TemporaryDirectory(prefix="vitgrade-judge-") as private, \
                    zygote_for(week, zygote) as address:
                result = _run_judge(week, Path(root), suite, tests_src, exitfirst, timeout, label, Path(private),
                                    address, order, task)
        else:
            result = _run_scratch(week, root, suite, tests_src, exitfirst, timeout, label, tests_digest, order, task,
                                  zygote, batch)
    except OSError as exc:  # the grader's own folders (ENOSPC, EMFILE, ...): not the student's failure
        result = SuiteResult(week=week, suite=suite, root=label, status="error",
                             error=f"the grader's own files failed ({type(exc).__name__}: {exc.strerror or exc})")
    if result.status == "error" and not result.error.startswith(NOT_GRADED):
        result.error = NOT_GRADED + result.error
    return result


NOT_GRADED = "not graded: "


def not_graded(result: SuiteResult) -> bool:
    """A result that is no verdict: the grader's side failed (see :func:`run`)."""
    return result.status == "error"


def _run_scratch(week: int, root: Path | integrity.Snapshot, suite: str, tests_src: Path, exitfirst: bool,
                 timeout: float, label: str, tests_digest: str | None, order: dict[str, float] | None,
                 task: str | None, zygote: str | None, batch: scratch_mod.Batch | None) -> SuiteResult:
    """The judge on a working copy, in the submission's own scratch (vitgrade.confine.scratch), which
    this process (the grader) makes before and removes after, however the judge ended."""
    own = None
    if batch is None:
        batch = scratch_mod.Batch.from_env()  # an nbgrader process: its orchestrator's batch
    if batch is None:
        batch = own = scratch_mod.Batch()
    try:
        space = batch.scratch(Path(label).name)
        try:
            with zygote_for(week, zygote) as address:
                return _judge_in(week, root, suite, tests_src, exitfirst, timeout, label, tests_digest, order, task,
                                 address, space)
        finally:
            space.close()
    finally:
        if own is not None:
            own.close()


def _judge_in(week: int, root: Path | integrity.Snapshot, suite: str, tests_src: Path, exitfirst: bool,
              timeout: float, label: str, tests_digest: str | None, order: dict[str, float] | None,
              task: str | None, address: str, space: scratch_mod.Scratch) -> SuiteResult:
    tmp, private = space.folder / "copy", space.folder / "judge"
    tmp.mkdir(mode=0o711)
    private.mkdir(mode=0o700)  # private: the judge's own files
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
    result = _run_judge(week, work, suite, tests, exitfirst, timeout, label, private, address, order, task, space)
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


def _run_judge(week: int, root: Path, suite: str, tests_dir: Path, exitfirst: bool, timeout: float,
               label: str, private: Path, address: str, order: dict[str, float] | None,
               task: str | None, space: scratch_mod.Scratch | None = None) -> SuiteResult:
    argv = ["--week", str(week), "--root", str(root), "--suite", suite, "--tests", str(tests_dir)]
    if order:
        (private / "order.json").write_text(json.dumps(order))
        argv += ["--order", str(private / "order.json")]
    if task:
        argv += ["--task", task]
    if exitfirst:
        argv.append("-x")
    start = time.monotonic()
    reader = PipeReader()
    out_path = private / "judge.log"
    out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    env = judge_env(address)
    if space is not None:
        env[scratch_mod.SCRATCH_ENV] = space.to_env()
    try:
        child = zygote_mod.spawn(address, "judge", {"argv": argv, "env": env, "entry": ENTRY, "cwd": str(private)},
                                 [reader.fd, out])
    except (OSError, RuntimeError) as exc:
        return SuiteResult(week=week, suite=suite, root=label, status="error",
                           error=f"the fork server could not start a judge ({type(exc).__name__}: {exc})")
    finally:
        os.close(out)
        reader.close_writer()
    try:
        code = child.wait(timeout)
        if code is None:
            child.kill()
            child.wait(10)
            result = SuiteResult(week=week, suite=suite, root=label, status="error",
                                 error=f"the grader timed out after {timeout:.0f} s")
        elif child.lost:
            result = SuiteResult(week=week, suite=suite, root=label, status="error",
                                 error="the fork server died while this submission was graded")
        else:
            try:
                result = SuiteResult.from_json(json.loads(reader.read()))
            except (json.JSONDecodeError, KeyError, TypeError):
                tail = out_path.read_text(errors="replace")[-800:] if out_path.exists() else ""
                result = SuiteResult(week=week, suite=suite, root=label, status="error",
                                     error=f"the grader itself failed (exit {code}): {tail.strip()}")
    finally:
        child.close()
    result.root = label
    result.seconds = round(time.monotonic() - start, 2)
    return result
