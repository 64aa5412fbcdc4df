"""The nbgrader side: build a week's assignment, make sample submissions, autograde, export.

Course directory: ``grading/`` (``nbgrader_config.py`` there). ``build`` writes
``source/<week>/`` from the single sources (instructor notebook from the jupytext script, the
student stub package, the hidden suite as ``hidden_tests/``) and runs
``nbgrader generate_assignment``. Sample submissions are made from the reference solution, the
untouched release and a mutant, never kept as copies.
"""

from __future__ import annotations

import ast
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

from vitgrade import settings, weeks
from vitgrade.autograde import nbtrust, repair
from vitgrade.build import generate, mutants, submissions
from vitgrade.confine import isolate, scratch
from vitgrade.confine.zygote import ENV as ZYGOTE_ENV
from vitgrade.judging import integrity, judge
from vitgrade.judging.results import one_line
from vitgrade.pipes import PipeReader

COURSE = weeks.GRADING
# Where a submission whose notebook is renamed or missing is graded from: a copy of its
# submitted/ folder with the notebook under its expected name (submitted/ itself is never written).
STAGED = ".vitgrade/staged"


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
    proc = subprocess.run([sys.executable, "-m", "vitgrade.autograde.nbgrader_cli", *args], cwd=course, env=env,
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


def answered_notebook(week: weeks.Week, release_nb: Path) -> nbformat.NotebookNode:
    """The release notebook (or the student notebook) with every solution cell answered from the reference."""
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
        nbformat.write(answered_notebook(week, release / week.notebook_name), dest / week.notebook_name)
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
    notebooks: dict[str, list[str]] = field(default_factory=dict)  # per student: notebook repairs
    not_graded: list[str] = field(default_factory=list)  # students without a verdict
    retried: dict[str, str] = field(default_factory=dict)  # student -> why the first attempt gave no verdict
    leftovers: list[str] = field(default_factory=list)  # scratch, mounts, groups left at the end (a bug)
    events: list[str] = field(default_factory=list)  # e.g. the fork server died and was restarted
    limits: str = ""  # the batch's limits line

    @property
    def ok(self) -> bool:
        """Nothing needs a look: every student graded, nothing flagged, no notebook repaired."""
        return (not self.tampering and not self.problems and not any(self.notebooks.values())
                and not self.not_graded and not self.leftovers)

    def summary(self) -> list[str]:
        lines = [f"TAMPERING: {path}" for path in self.tampering] + list(self.problems)
        for student, notes in sorted(self.notebooks.items()):
            lines += [f"{student}: notebook repaired (the grade did not depend on it): {note}" for note in notes]
        lines += [f"grader: {event}" for event in self.events]
        lines += [f"retried {s}: the first attempt gave no verdict ({why})" for s, why in sorted(self.retried.items())]
        if self.not_graded:
            lines.append(f"NOT GRADED: {len(self.not_graded)} student(s): {', '.join(self.not_graded)}")
        lines += [f"LEFTOVER: {left} (removed at the end of the batch)" for left in self.leftovers]
        return lines


KERNEL_NEVER = ("wandb",)  # never preloaded in a kernel template (blocked in the zygote: it writes to TMPDIR)


def notebook_imports(week: weeks.Week) -> tuple[str, ...]:
    """The modules the week's notebook imports (``import a.b``, ``from a.b import c``: ``a.b``), read from
    the notebook's source (the jupytext script, else the student notebook's code cells), then the other
    packages' modules that the course modules it imports use, anywhere in them (the reference package's
    source, followed through its own imports: ``sklearn.datasets`` behind ``load_data``, 1 s a kernel):
    what the zygote's kernel template imports once for every kernel of the batch. Never the course package
    (``vitcourse``: each student's own, imported by their kernel from their folder), the grader's
    (``vitgrade``), one not installed, or :data:`KERNEL_NEVER`."""
    if week.notebook_source.exists():
        sources = [week.notebook_source.read_text()]
    else:
        nb = nbformat.read(week.student_notebook, as_version=4)
        sources = ["\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
                   for cell in nb.cells if cell.cell_type == "code"]
    names: list[str] = []
    course: list[str] = []  # vitcourse modules, in the order found
    for source in sources:
        _imports(source, names, course)
    for module in course:  # grows while it is walked: the course modules those import
        folder = weeks.SOLUTION_PACKAGE.joinpath(*module.split(".")[1:])
        for path in (folder.with_suffix(".py"), folder / "__init__.py"):  # a module, or a package
            if path.is_file():
                _imports(path.read_text(), names, course)
                break
    return tuple(n for n in names if n.split(".")[0] not in KERNEL_NEVER and _installed(n))


def _imports(source: str, names: list[str], course: list[str]) -> None:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:  # relative: a course module
            found = ["vitcourse" + (f".{node.module}" if node.module else "")]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found = [node.module]
        else:
            continue
        for name in found:
            top = name.split(".")[0]
            if top == "vitcourse":
                if name not in course:
                    course.append(name)
            elif top not in ("vitgrade", "__future__") and top not in sys.stdlib_module_names and name not in names:
                names.append(name)


def _installed(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name.split(".")[0]) is not None
    except (ImportError, ValueError):
        return False


def _autograde_batch(assignment: str, students: list[str], digests: dict[str, str], course: Path, tests: str,
                     zygote: str, located: dict[str, repair.Located], batch: str = "") -> dict[str, NbgraderRun]:
    """One ``nbgrader autograde`` process for ``students`` (nbgrader walks them in turn; one that
    fails does not stop the others). Each student's verdict comes back as one line on a private
    pipe. Submissions whose notebook was renamed or is missing are graded from their staged copy
    (:data:`STAGED`), which needs a process of their own; the student is told why
    (``located.notes``)."""
    reader = PipeReader()
    args = ["autograde", assignment, "--force"]
    if len(students) == 1:
        args += ["--student", students[0]]
    else:  # nbgrader selects with a pattern and an exclusion list: everyone else in submitted/
        others = sorted({p.name for p in (course / "submitted").iterdir()} - set(students))
        args += ["--student", "*"] + ([f"--CourseDirectory.student_id_exclude={','.join(others)}"] if others else [])
    if any(located[s].moved for s in students):
        args.append(f"--CourseDirectory.submitted_directory={STAGED}")
    env = {nbtrust.VERDICT_FD_ENV: str(reader.fd), nbtrust.TESTS_ENV: tests, ZYGOTE_ENV: zygote,
           nbtrust.EXPECT_ENV: json.dumps({s: digests[s] for s in students}),
           repair.NOTES_ENV: json.dumps({s: located[s].notes for s in students})}
    if batch:
        env[scratch.ENV] = batch
    runs = settings.course_runs() if settings.execute_notebook() else None
    if runs:  # the kernels read the course's runs (read-only in their view) instead of training again
        env["VIT_COURSE_RUNS"] = runs
    try:
        run = nbgrader(*args, course=course, env_extra=env, pass_fds=(reader.fd,))
    finally:
        reader.close_writer()
    verdicts = {}
    for line in reader.read().decode(errors="replace").splitlines():
        try:
            verdict = json.loads(line)
            verdicts[verdict["student"]] = verdict
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    runs = {}
    for student in students:  # a student without a verdict was not graded: the batch's exit says why
        code = run.returncode if student not in verdicts else 0
        runs[student] = NbgraderRun(run.command, code, run.seconds, run.output, verdicts.get(student))
    return runs


def batches(students: list[str], located: dict[str, repair.Located], jobs: int,
            cost: dict[str, float] | None = None) -> list[list[str]]:
    """``jobs`` batches (one nbgrader start-up each, instead of one per student) of about equal
    work: each student goes to the batch with the least so far, the costliest first (``cost``: the
    expected seconds per student, default equal). A staged submission, and a student id with a comma
    (nbgrader's exclusion list could not name it), get a batch of their own."""
    alone = [[s] for s in students if located[s].moved or "," in s]
    rest = [s for s in students if [s] not in alone]
    cost = cost or {}
    loads = [[0.0, []] for _ in range(max(1, min(jobs, len(rest))))]
    for student in sorted(rest, key=lambda s: -cost.get(s, 1.0)):  # stable: equal costs keep their order
        lightest = min(loads, key=lambda load: load[0])
        lightest[0] += cost.get(student, 1.0)
        lightest[1].append(student)
    return [batch for _, batch in loads if batch] + alone


def autograde(number: int, students: list[str], jobs: int = 2, course: Path = COURSE
              ) -> dict[str, NbgraderRun]:
    """``jobs`` ``nbgrader autograde`` processes at a time, each grading a batch of students in turn
    (:func:`batches`). Two processes against one sqlite gradebook are safe (for more graders, use
    Postgres: see grading/DEPLOYMENT.md). Each process sends one trusted verdict per student
    (:mod:`vitgrade.autograde.nbtrust`) through a private pipe.
    """
    return autograde_checked(number, students, jobs, course).runs


def _locate_notebooks(week: weeks.Week, students: list[str], course: Path) -> dict[str, repair.Located]:
    """Each student's notebook; a renamed or missing one is staged (see :data:`STAGED`)."""
    release_path = course / "release" / week.assignment / week.notebook_name
    release = nbformat.read(release_path, as_version=4)
    found = {}
    for student in students:
        folder = course / "submitted" / student / week.assignment
        located = repair.locate(folder, week.notebook_name, release)
        if located.moved and folder.is_dir():
            repair.stage(located, folder, course / STAGED / student / week.assignment, release_path)
        elif located.moved:  # no submission at all: nbgrader says so
            located = repair.Located(located.expected, [], located.expected)
        found[student] = located
    return found


def autograde_checked(number: int, students: list[str], jobs: int = 2, course: Path = COURSE,
                      export_rows: bool = True, cost: dict[str, float] | None = None) -> AutogradeReport:
    """:func:`autograde`, plus the checks: before any student's code runs, the digest of every
    submitted package (passed to its autograde process, which compares) and the hashes of what
    must not change (source/, release/, every submitted/ folder, the repository's hidden tests
    and solutions); after, those hashes again, every student's exit status and verdict, and the
    exported gradebook against the verdicts. Every notebook repair (:mod:`vitgrade.autograde.repair`)
    is in ``notebooks`` and in ``<course>/.vitgrade/reports/<assignment>.csv``, and makes the
    batch need a look (``ok`` is False) though every package was graded."""
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
    located = _locate_notebooks(week, students, course)
    retried: dict[str, str] = {}
    try:
        # Warm kernels (vitgrade.confine.jail): a kernel template in the zygote, when notebooks are re-run.
        kernels = notebook_imports(week) if settings.execute_notebook() and settings.warm_kernels() else None
        with scratch.Batch() as space, judge.new_zygote(number, kernels) as zygote, \
                ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            def grade(group: list[str]) -> dict[str, NbgraderRun]:
                zygote.ensure()
                return _autograde_batch(assignment, group, digests, course, tests, zygote.address, located,
                                        space.to_env())

            runs = {}
            for batch_runs in pool.map(grade, batches(students, located, jobs, cost)):
                runs.update(batch_runs)
            # A student whose nbgrader process gave no verdict at all (it died, or could not start)
            # was not graded by the student's doing: once more, on their own.
            again = [s for s in students if runs[s].verdict is None]
            for student, run in zip(again, pool.map(lambda s: grade([s])[s], again)):
                first = runs[student]
                retried[student] = one_line(first.output.strip().splitlines()[-1] if first.output.strip()
                                            else f"nbgrader exit {first.returncode}")
                runs[student] = run
            runs = {s: runs[s] for s in students}
            events = zygote.restarts + zygote.notes
    finally:
        shutil.rmtree(course / STAGED, ignore_errors=True)
    report = AutogradeReport(runs, tampering=guard.changes(), retried=retried, leftovers=space.leftovers_found,
                             events=events, limits=scratch.describe())
    for student, run in runs.items():
        verdict = run.verdict or {}
        if verdict.get("retried"):
            report.retried.setdefault(student, verdict["retried"])
        if run.verdict is None or verdict.get("status") == "error":
            report.not_graded.append(student)
    for student, run in runs.items():
        verdict = run.verdict
        said = list((verdict or {}).get("notebook", []))  # the exporter repeats the orchestrator's lines
        report.notebooks[student] = [n for n in located[student].notes if n not in said] + said
        if run.returncode != 0 or verdict is None:
            reason = (verdict or {}).get("error") or one_line(run.output.strip().splitlines()[-1]
                                                             if run.output.strip() else "no output")
            report.problems.append(f"{student}: not graded (nbgrader exit {run.returncode}): {reason}")
        elif verdict.get("tampering"):
            report.problems.append(f"{student}: flagged: {'; '.join(verdict['tampering'][:3])}")
    rows = {}
    if export_rows:
        rows = {r["student_id"]: r for r in export(course) if r["assignment"] == assignment}
        for student, run in runs.items():
            if run.verdict is None or run.returncode != 0:
                continue
            got = float(rows.get(student, {}).get("score", "nan"))
            if abs(got - run.verdict["earned"]) > 1e-4:  # nbgrader's export writes 4 decimals: 53.6667 for 161/3
                report.problems.append(f"{student}: gradebook says {got}, the verdict was "
                                       f"{run.verdict['earned']}")
    _write_report(course / ".vitgrade" / "reports" / f"{assignment}.csv", report, rows)
    return report


REPORT_FIELDS = ["student", "points", "max", "nbgrader_exit", "status", "notebook"]


def _write_report(path: Path, report: AutogradeReport, rows: dict[str, dict]) -> None:
    """One line per student for the instructor: points, status, and what happened to the notebook
    (this batch's students replace their earlier lines; other students' lines stay)."""
    lines = {}
    if path.exists():
        with open(path, newline="") as fh:
            lines = {line["student"]: line for line in csv.DictReader(fh)}
    for student, run in report.runs.items():
        verdict, row = run.verdict or {}, rows.get(student, {})
        status = verdict.get("status", "not graded") if run.returncode == 0 else "not graded"
        lines[student] = {"student": student, "points": row.get("score", verdict.get("earned", "")),
                          "max": row.get("max_score", verdict.get("max", "")), "nbgrader_exit": run.returncode,
                          "status": status, "notebook": " | ".join(report.notebooks.get(student, []))}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=REPORT_FIELDS)
        writer.writeheader()
        writer.writerows(lines[s] for s in sorted(lines))


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
