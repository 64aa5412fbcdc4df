"""The nbgrader side: build a week's assignment, make sample submissions, autograde, export.

Course directory: ``grading/`` (``nbgrader_config.py`` there). ``build`` writes
``source/<week>/`` from the single sources (instructor notebook from the jupytext script, the
student stub package, the hidden suite as ``hidden_tests/``) and runs
``nbgrader generate_assignment``. Sample submissions are made from the reference solution, the
untouched release and a mutant, never kept as copies.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from vitgrade import weeks
from vitgrade.autograde import nbtrust
from vitgrade.build import generate, mutants, submissions
from vitgrade.confine import isolate
from vitgrade.confine.zygote import ENV as ZYGOTE_ENV
from vitgrade.confine.zygote import Zygote
from vitgrade.judging import integrity, judge
from vitgrade.judging.results import one_line
from vitgrade.pipes import PipeReader

COURSE = weeks.GRADING


@dataclass
class NbgraderRun:
    command: str
    returncode: int
    seconds: float
    output: str
    verdict: dict | None = None  # the trusted verdict, from the private pipe (autograde only)


def nbgrader(*args: str, course: Path = COURSE, check: bool = False, env_extra: dict | None = None,
             pass_fds: tuple[int, ...] = ()) -> NbgraderRun:
    """Run one nbgrader command headless in the course directory."""
    env = dict(os.environ)
    env.update(env_extra or {})
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")  # a fresh gradebook runs `alembic`
    env.setdefault("VIT_SCALE", "smoke")
    env.pop("JUPYTER_PLATFORM_DIRS", None)
    env.pop("MPLBACKEND", None)  # let the kernel show figures inline
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                          capture_output=True, text=True, pass_fds=pass_fds, stdin=subprocess.DEVNULL)
    run = NbgraderRun(" ".join(["nbgrader", *args]), proc.returncode,
                      round(time.monotonic() - start, 1), proc.stdout + proc.stderr)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{run.command} failed (exit {proc.returncode}):\n{run.output[-3000:]}")
    return run


def build(number: int, course: Path = COURSE) -> Path:
    """Write source/<week>/ and generate release/<week>/ with nbgrader."""
    write_source(number, course)
    return generate_release(number, course)


def write_source(number: int, course: Path = COURSE) -> Path:
    """source/<week>/: the instructor notebook, the stub package (earlier weeks' modules as their
    reference solutions) and the hidden tests."""
    week = weeks.get(number)
    source = course / "source" / week.assignment
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    nb = generate.build_notebook(week, student=False)
    nbformat.write(nb, source / week.notebook_name)
    shutil.copytree(weeks.STUDENT_PACKAGE, source / weeks.PACKAGE,  # students get the stubs
                    ignore=shutil.ignore_patterns("__pycache__"))
    for module in week.support_modules:  # earlier weeks' reference solutions, without markers
        text = generate.strip_markers((weeks.SOLUTION_PACKAGE / module).read_text())
        (source / weeks.PACKAGE / module).write_text(text)
    shutil.copytree(week.suite_dir("hidden"), source / "hidden_tests", ignore=shutil.ignore_patterns("__pycache__"))
    return source


def generate_release(number: int, course: Path = COURSE) -> Path:
    """release/<week>/ from source/<week>/ (``nbgrader generate_assignment``)."""
    week = weeks.get(number)
    nbgrader("generate_assignment", week.assignment, "--force", course=course, check=True)
    release = course / "release" / week.assignment
    _name_tasks_in_answer_stubs(week, release / week.notebook_name)
    return release


def _name_tasks_in_answer_stubs(week: weeks.Week, notebook: Path) -> None:
    """nbgrader puts one generic stub into every answer cell; use the repository's student
    notebook's instead (the same generator), whose error names the cell's task."""
    stubs = {c.metadata["nbgrader"]["grade_id"]: c.source for c in generate.build_notebook(week, student=True).cells
             if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")}
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in stubs:
            cell.source = stubs[grade_id]
    nbformat.write(nb, notebook)


def _filled_notebook(week: weeks.Week, release_nb: Path) -> nbformat.NotebookNode:
    """The release notebook with every solution cell answered from the reference."""
    nb = nbformat.read(release_nb, as_version=4)
    reference = {c.metadata["nbgrader"]["grade_id"]: c.source
                 for c in generate.build_notebook(week, student=False).cells
                 if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in reference:  # the answer, without the solution markers
            cell.source = generate.strip_markers(reference[grade_id])
    return nb


def make_submission(number: int, student: str, kind: str = "stub", mutant: mutants.Mutant | None = None,
                    course: Path = COURSE, filled_notebook: bool | None = None) -> Path:
    """``submitted/<student>/<assignment>/``: the release, with the package filled
    (:func:`vitgrade.build.submissions.fill`: ``kind`` 'solution' or 'stub', then ``mutant``) and,
    for a solution (or with ``filled_notebook``), the notebook's answer cells filled in."""
    week = weeks.get(number)
    release = course / "release" / week.assignment
    dest = course / "submitted" / student / week.assignment
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(release, dest)
    if kind == "stub" and mutant is None:
        return dest
    if filled_notebook is None:
        filled_notebook = kind == "solution"
    if filled_notebook:
        nbformat.write(_filled_notebook(week, release / week.notebook_name), dest / week.notebook_name)
    submissions.fill(dest / weeks.PACKAGE, kind, mutant)
    return dest


def export(course: Path = COURSE) -> list[dict]:
    out = course.resolve() / "grades.csv"  # nbgrader runs in the course folder: hand it absolute paths
    nbgrader("export", "--to", str(out), course=course, check=True)
    with open(out) as fh:
        return list(csv.DictReader(fh))


@dataclass
class AutogradeReport:
    """What one autograde batch decided, and everything that went wrong around it."""

    runs: dict[str, NbgraderRun]
    tampering: list[str] = field(default_factory=list)  # protected files that changed
    problems: list[str] = field(default_factory=list)  # per student: not graded / gradebook disagrees

    @property
    def ok(self) -> bool:
        return not self.tampering and not self.problems


def _autograde_one(assignment: str, student: str, digest: str, course: Path, tests: str,
                   zygote: str) -> NbgraderRun:
    reader = PipeReader()
    try:
        run = nbgrader("autograde", assignment, "--student", student, "--force", course=course,
                       env_extra={nbtrust.VERDICT_FD_ENV: str(reader.fd), nbtrust.EXPECT_ENV: digest,
                                  nbtrust.TESTS_ENV: tests, ZYGOTE_ENV: zygote},
                       pass_fds=(reader.fd,))
    finally:
        reader.close_writer()
    data = reader.read()
    try:
        run.verdict = json.loads(data) if data else None
    except json.JSONDecodeError:
        run.verdict = None
    return run


def autograde(number: int, students: list[str], jobs: int = 2, course: Path = COURSE
              ) -> dict[str, NbgraderRun]:
    """One ``nbgrader autograde --student`` process per student, ``jobs`` at a time.

    nbgrader's own autograde is sequential; one process per student against one sqlite
    gradebook is safe at 2 processes (for more graders, use Postgres: see grading/DEPLOYMENT.md).
    Each process sends its trusted verdict (:mod:`vitgrade.nbtrust`) through a private pipe.
    """
    return autograde_checked(number, students, jobs, course).runs


def autograde_checked(number: int, students: list[str], jobs: int = 2, course: Path = COURSE,
                      export_rows: bool = True) -> AutogradeReport:
    """:func:`autograde`, plus the checks: before any student's code runs, the digest of every
    submitted package (passed to its autograde process, which compares) and the hashes of what
    must not change (source/, release/, every submitted/ folder, the repository's hidden tests
    and solutions); after, those hashes again, every student's exit status and verdict, and the
    exported gradebook against the verdicts."""
    isolate.protect_self()
    week = weeks.get(number)
    assignment = week.assignment
    digests = {}
    for student in students:
        package = course / "submitted" / student / assignment / weeks.PACKAGE
        digests[student] = nbtrust.modules_digest(week, integrity.Snapshot.take(package).files)
    guard = integrity.Guard([course / "source" / assignment, course / "release" / assignment,
                             course / "submitted", week.suite_dir("hidden"), weeks.SOLUTION_PACKAGE])
    tests = judge.tests_digest(course / "source" / assignment / "hidden_tests")
    with Zygote(preload=week.references) as zygote, ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        runs = dict(zip(students, pool.map(
            lambda s: _autograde_one(assignment, s, digests[s], course, tests, zygote.address), students)))
    report = AutogradeReport(runs, tampering=guard.changes())
    for student, run in runs.items():
        verdict = run.verdict
        if run.returncode != 0 or verdict is None:
            reason = (verdict or {}).get("error") or one_line(run.output.strip().splitlines()[-1]
                                                             if run.output.strip() else "no output")
            report.problems.append(f"{student}: not graded (nbgrader exit {run.returncode}): {reason}")
        elif verdict.get("tampering"):
            report.problems.append(f"{student}: flagged: {'; '.join(verdict['tampering'][:3])}")
    if export_rows:
        rows = {r["student_id"]: r for r in export(course) if r["assignment"] == assignment}
        for student, run in runs.items():
            if run.verdict is None or run.returncode != 0:
                continue
            got = float(rows.get(student, {}).get("score", "nan"))
            if abs(got - run.verdict["earned"]) > 1e-6:
                report.problems.append(f"{student}: gradebook says {got}, the verdict was "
                                       f"{run.verdict['earned']}")
    return report


def sample_submissions(number: int) -> dict[str, tuple[str, mutants.Mutant | None]]:
    """The bundled samples: student id -> (kind, mutant), made fresh from their sources each time."""
    week = weeks.get(number)
    bug = next(m for m in mutants.load(number) if m.name == week.sample_mutant)
    return {
        f"w{number:02d}-reference": ("solution", None),
        f"w{number:02d}-untouched": ("stub", None),
        f"w{number:02d}-bug-{week.sample_mutant}": ("solution", bug),
    }


def demo(number: int = 1, jobs: int = 2, course: Path = COURSE,
         progress: Callable[[str], None] = lambda line: None) -> tuple[list[dict], dict]:
    """Build a week, autograde its sample submissions, export the grades and write the students'
    feedback; return the exported grades of the samples and each student's autograde run.

    ``progress`` gets one line per step as it starts and ends, and one per student as their
    autograde finishes (``vitgrade nbgrader demo`` prints them)."""
    week = weeks.get(number)
    course = course.resolve()
    samples = sample_submissions(number)
    steps = 6

    def step(index: int, what: str, action: Callable[[], object]) -> object:
        progress(f"[{index}/{steps}] {what} ...")
        start = time.monotonic()
        result = action()
        progress(f"      done in {time.monotonic() - start:.1f} s")
        return result

    progress(f"Week {week.number} ({week.assignment}) in nbgrader; course folder {course}")
    step(1, f"build: source/{week.assignment}/ (instructor notebook, stub package, hidden tests)",
         lambda: write_source(number, course))
    step(2, f"generate: release/{week.assignment}/ with nbgrader generate_assignment",
         lambda: generate_release(number, course))

    def make_all() -> None:
        for student, (kind, mutant) in samples.items():
            shutil.rmtree(course / "autograded" / student / week.assignment, ignore_errors=True)
            make_submission(number, student, kind, mutant, course)

    step(3, f"submissions: {', '.join(samples)} in submitted/", make_all)

    def grade_all() -> dict[str, NbgraderRun]:
        runs: dict[str, NbgraderRun] = {}

        def one(student: str) -> None:  # one batch per student, so each is reported when it is done
            report = autograde_checked(number, [student], 1, course, export_rows=False)
            run = runs[student] = report.runs[student]
            verdict = run.verdict or {}
            points = f"{verdict['earned']:g}/{verdict['max']:g}" if "earned" in verdict else "no verdict"
            progress(f"      {student:<32} {points:>9}  nbgrader exit {run.returncode}  {run.seconds:.0f} s")
            for problem in report.problems + report.tampering:
                progress(f"      PROBLEM: {problem}")

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            list(pool.map(one, samples))
        return {student: runs[student] for student in samples}

    runs = step(4, f"autograde: one nbgrader autograde per student, {jobs} at a time (the notebook runs "
                   "in a jailed kernel; the hidden tests grade the package outside it)", grade_all)
    rows = step(5, "export: nbgrader export", lambda: export(course))
    rows = [r for r in rows if r["assignment"] == week.assignment and r["student_id"] in samples]
    step(6, "feedback: nbgrader generate_feedback (the HTML each student gets back)",
         lambda: nbgrader("generate_feedback", week.assignment, "--force", course=course, check=True))
    return rows, runs


def demo_locations(number: int, course: Path = COURSE) -> list[tuple[str, Path]]:
    """Where the demo's results are: (what, path) for the gradebook, its export, and each sample
    student's autograded notebook and feedback page."""
    week = weeks.get(number)
    course = course.resolve()
    places = [("gradebook (nbgrader's database)", course / "gradebook.db"),
              ("gradebook exported", course / "grades.csv")]
    for student in sample_submissions(number):
        places.append((f"{student}: autograded notebook",
                       course / "autograded" / student / week.assignment / week.notebook_name))
        places.append((f"{student}: feedback", course / "feedback" / student / week.assignment
                       / week.notebook_name.replace(".ipynb", ".html")))
    return places
