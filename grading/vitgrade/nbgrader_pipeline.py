"""The nbgrader side: build a week's assignment, make sample submissions, autograde, export.

Course directory: ``grading/`` (``nbgrader_config.py`` there). ``build`` writes
``source/<week>/`` from the single sources (instructor notebook from the jupytext script, the
student stub package, the hidden suite as ``hidden_tests/``) and runs
``nbgrader generate_assignment``. Sample submissions are made from the reference solution, the
untouched release and a mutant, never kept as copies.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from vitgrade import generate, mutants, weeks

COURSE = weeks.GRADING


@dataclass
class NbgraderRun:
    command: str
    returncode: int
    seconds: float
    output: str


def nbgrader(*args: str, course: Path = COURSE, check: bool = False) -> NbgraderRun:
    """Run one nbgrader command headless in the course directory."""
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")  # a fresh gradebook runs `alembic`
    env.setdefault("VIT_SCALE", "smoke")
    env.pop("JUPYTER_PLATFORM_DIRS", None)
    env.pop("MPLBACKEND", None)  # let the kernel show figures inline
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                          capture_output=True, text=True)
    run = NbgraderRun(" ".join(["nbgrader", *args]), proc.returncode,
                      round(time.monotonic() - start, 1), proc.stdout + proc.stderr)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{run.command} failed (exit {proc.returncode}):\n{run.output[-3000:]}")
    return run


def _copy_package(dest: Path, exercise_source: Path) -> None:
    """A full vitcourse package: shared modules + this week's exercise modules from a source."""
    shutil.copytree(weeks.STUDENT_PACKAGE, dest, ignore=shutil.ignore_patterns("__pycache__"),
                    dirs_exist_ok=True)
    for module in exercise_source.glob("*.py"):
        shutil.copy2(module, dest / module.name)


def build(number: int, course: Path = COURSE) -> Path:
    """Write source/<week>/ and generate release/<week>/ with nbgrader."""
    week = weeks.get(number)
    source = course / "source" / week.assignment
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    nb = generate.build_notebook(week, student=False)
    nbformat.write(nb, source / f"{week.notebook}.ipynb")
    _copy_package(source / weeks.PACKAGE, weeks.STUDENT_PACKAGE)  # students get the stubs
    shutil.copytree(weeks.suite_dir(number, "hidden"), source / "hidden_tests",
                    ignore=shutil.ignore_patterns("__pycache__"))
    nbgrader("generate_assignment", week.assignment, "--force", course=course, check=True)
    return course / "release" / week.assignment


def _filled_notebook(week: weeks.Week, release_nb: Path) -> nbformat.NotebookNode:
    """The release notebook with every solution cell answered from the reference."""
    nb = nbformat.read(release_nb, as_version=4)
    reference = {c.metadata["nbgrader"]["grade_id"]: c.source
                 for c in generate.build_notebook(week, student=False).cells
                 if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in reference:  # the answer, without the solution markers
            cell.source = "\n".join(
                line for line in reference[grade_id].splitlines()
                if not (generate.BEGIN.match(line) or generate.END.match(line)))
    return nb


def make_submission(number: int, student: str, kind: str, course: Path = COURSE) -> Path:
    """submitted/<student>/<week>/ from ``kind``: 'solution', 'release' or 'mutant:<name>'."""
    week = weeks.get(number)
    release = course / "release" / week.assignment
    dest = course / "submitted" / student / week.assignment
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(release, dest)
    if kind == "release":
        return dest
    nbformat.write(_filled_notebook(week, release / f"{week.notebook}.ipynb"),
                   dest / f"{week.notebook}.ipynb")
    package = dest / weeks.PACKAGE
    for module in week.modules:
        shutil.copy2(weeks.SOLUTION_PACKAGE / module, package / module)
    if kind.startswith("mutant:"):
        name = kind.split(":", 1)[1]
        mutant = next(m for m in mutants.load(number) if m.name == name)
        mutant.apply(package)
    elif kind != "solution":
        raise ValueError(f"unknown sample kind {kind!r}")
    return dest


def export(course: Path = COURSE) -> list[dict]:
    out = course / "grades.csv"
    nbgrader("export", "--to", str(out), course=course, check=True)
    with open(out) as fh:
        return list(csv.DictReader(fh))


def autograde(number: int, students: list[str], jobs: int = 2, course: Path = COURSE
              ) -> dict[str, NbgraderRun]:
    """One ``nbgrader autograde --student`` process per student, ``jobs`` at a time.

    nbgrader's own autograde is sequential; one process per student against one sqlite
    gradebook is safe at 2 processes (for more graders, use Postgres: see the README).
    A non-zero exit (e.g. a dead kernel) is reported, never hidden behind a 0.0 in the CSV.
    """
    from concurrent.futures import ThreadPoolExecutor

    assignment = weeks.get(number).assignment

    def one(student: str) -> NbgraderRun:
        return nbgrader("autograde", assignment, "--student", student, "--force", course=course)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return dict(zip(students, pool.map(one, students)))


def sample_submissions(number: int) -> dict[str, str]:
    """The bundled samples: student id -> kind (made fresh from their sources each time)."""
    week = weeks.get(number)
    return {
        f"w{number:02d}-reference": "solution",
        f"w{number:02d}-untouched": "release",
        f"w{number:02d}-bug-{week.sample_mutant}": f"mutant:{week.sample_mutant}",
    }


def demo(number: int = 1, jobs: int = 2, course: Path = COURSE) -> tuple[list[dict], dict]:
    """Build a week, autograde its sample submissions, and return the exported grades."""
    week = weeks.get(number)
    build(number, course)
    samples = sample_submissions(number)
    for student in samples:
        shutil.rmtree(course / "autograded" / student / week.assignment, ignore_errors=True)
    for student, kind in samples.items():
        make_submission(number, student, kind, course)
    runs = autograde(number, list(samples), jobs, course)
    rows = [r for r in export(course) if r["assignment"] == week.assignment
            and r["student_id"] in samples]
    return rows, runs
