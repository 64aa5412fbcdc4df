"""The zoo of broken and hostile submissions, graded through both paths.

Each ``grading/zoo/<week id>/<name>.mutant`` is a patch against the week's reference solution in
the format of :mod:`vitgrade.build.mutants`, with two header lines::

    # expect: 1.1=10 1.2=1 1.3=0        (points per task that the honest part earns)
    # reason: timed out                 (substring of the one-line reason the student sees)
    # message: recomputed               (optional: substring of some failing test's message)

An entry may start from another with ``# base: <name>`` (applied first; a file whose name starts
with ``_`` is a base only, not an entry). The other header lines argue the expected score.
A ``grading/zoo/<week id>/<name>.notebook`` entry
is a notebook-level edit (:mod:`vitgrade.selfcheck.nbedits`) applied to the notebook of a
reference-solution submission (the filled release notebook on the nbgrader path, the filled student
notebook beside the package on the ``vitgrade grade`` path)::

    # edit: duplicate task_1_3          (the operation and its arguments)
    # expect: 1.1=10 1.2=14 1.3=4       (the package's points: a notebook never costs any)
    # report: (task_1_3) appeared 2     (substring of the notebook report, both paths)
    # vitgrade report: none             (optional: what ``vitgrade grade`` reports instead; none = nothing)

Every other entry (and bystander) must get an empty notebook report: an untouched notebook is
never "repaired". :func:`grade_vitgrade` grades a set of entries
(plus bystanders: the reference and the untouched stub, whose grades must not move) with
``vitgrade grade --jobs N`` in a subprocess; :func:`grade_nbgrader` builds the week in a
temporary nbgrader course and runs one ``nbgrader autograde`` per student. :func:`check`
compares an outcome with its expectation. ``vitgrade zoo`` prints the table.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from vitgrade import weeks
from vitgrade.build import mutants, submissions
from vitgrade.build.generate import task_points
from vitgrade.judging import integrity
from vitgrade.judging.plugin import quoted_lines
from vitgrade.judging.results import SuiteResult, reason
from vitgrade.selfcheck import nbedits

# Short limits, so that the loops and crashes cost seconds: 3 s a call, 20 s a training run, 10 s an
# import, 10 s a notebook cell and 15 s a notebook.
ZOO_ENV = {"VITGRADE_TIME_SCALE": "0.25", "VITGRADE_TIMEOUT": "12", "VITGRADE_IMPORT_TIMEOUT": "40",
           "VITGRADE_MIN_LONG_TIMEOUT": "20", "VITGRADE_MEMORY_MB": "4096", "VITGRADE_CELL_TIMEOUT": "40",
           "VITGRADE_NOTEBOOK_BUDGET": "60"}
# Planted, readable by everyone, outside the checkout while the zoo is graded: what a grading
# machine holds that student code must not see (another copy of the course, another student's
# work, credentials, a pip cache). The marker must never reach a message or a notebook.
DECOY_MARKER = "VITGRADE-ZOO-DECOY-SECRET"
DECOY_ENV = "VITGRADE_ZOO_DB_PASSWORD"
DAEMON_MARK = "vitgrade-zoo-daemon"
# An entry's header fields.
KEYS = re.compile(r"#\s*(expect|reason|message|base|kernel|seconds|edit|report|vitgrade report):\s*(.*)")


@dataclass
class Entry:
    """A submission to grade: the reference or the stub (``kind``), patched by ``mutant``, its
    notebook changed by ``edit`` (a ``*.notebook`` entry)."""

    name: str
    description: str
    expect: dict[str, float]  # task -> points ({} for a plain mutant of the benchmark)
    reason: str
    mutant: mutants.Mutant | Chain | None  # None for a bystander
    kind: str = "solution"  # "solution" or "stub": what the patch applies to
    edit: tuple[str, list[str]] | None = None  # a notebook edit (nbedits operation, arguments)
    # False for an entry whose attack never touches the notebook's kernel (it fails in a forward
    # pass, in its numbers, or at import like any unfinished code): on the nbgrader path it is
    # graded in score-only mode (VITGRADE_EXECUTE=none), the kernel being the bystanders' business.
    kernel: bool = True
    seconds: float = 5.0  # about what grading it costs (# seconds:), to spread the work over the jobs
    report: dict[str, str] = field(default_factory=dict)  # path -> substring of its notebook report
    message: str = ""  # substring of some failing test's message (# message:), beyond the first one's

    def make(self, dest: Path, week: int | None = None) -> Path:
        """A submission folder holding ``vitcourse/`` for this entry (and for a notebook entry, the
        week's student notebook, answered from the reference, then edited)."""
        folder = submissions.make(dest, self.kind, self.mutant)
        if self.edit is not None:
            from vitgrade.autograde.pipeline import answered_notebook

            info = weeks.get(week)
            nbformat.write(answered_notebook(info, info.student_notebook), folder / info.notebook_name)
            self.apply_edit(folder / info.notebook_name)
        return folder

    def apply_edit(self, notebook: Path) -> None:
        nbedits.apply(notebook, *self.edit)

    @property
    def total(self) -> float:
        return round(sum(self.expect.values()), 6)


@dataclass
class Outcome:
    name: str
    tasks: dict[str, float]
    points: float
    status: str
    reason: str
    messages: list[str] = field(default_factory=list)
    notebook: list[str] = field(default_factory=list)  # what the path reported about the notebook


def _fields(path: Path) -> dict[str, str]:
    """The ``# key: value`` header lines of an entry (see KEYS)."""
    fields = {}
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        if m := KEYS.match(line):
            fields[m.group(1)] = m.group(2).strip()
    return fields


def _header(path: Path) -> tuple[dict[str, float], str, dict[str, str]]:
    """``# expect:``, ``# reason:`` and the other header fields of an entry."""
    fields = _fields(path)
    reason = fields.get("reason")
    if not fields.get("expect") or (reason is None and path.suffix == ".mutant"):
        raise ValueError(f"{path}: needs '# expect: 1.1=.. 1.2=..' and '# reason: ...' header lines")
    expect = {k: float(v) for k, v in (item.split("=") for item in fields["expect"].split())}
    return expect, reason or "", fields


@dataclass
class Chain:
    """An entry's patch on top of its bases (``# base: <name>``), applied in order."""

    parts: list[mutants.Mutant]

    @property
    def name(self) -> str:
        return self.parts[-1].name

    @property
    def description(self) -> str:
        return self.parts[-1].description

    @property
    def blocks(self) -> list[tuple[str, str]]:
        return [b for m in self.parts for b in m.blocks]

    def apply(self, package: Path) -> None:
        for mutant in self.parts:
            mutant.apply(package)


def _chain(path: Path) -> Chain:
    base = _fields(path).get("base")
    parts = _chain(path.with_name(f"{base}.mutant")).parts if base else []
    return Chain(parts + [mutants.parse(path)])


def weeks_with_zoo() -> list[int]:
    return [n for n, w in weeks.WEEKS.items() if any(w.zoo_dir.glob("*.mutant")) or any(w.zoo_dir.glob("*.notebook"))]


def _notebook_entry(path: Path) -> Entry:
    expect, reason, fields = _header(path)
    if "edit" not in fields or "report" not in fields:
        raise ValueError(f"{path}: a notebook entry needs '# edit: OPERATION ARGS' and '# report: ...' lines")
    operation, *args = fields["edit"].split()
    if operation not in nbedits.EDITS:
        raise ValueError(f"{path}: unknown edit {operation!r}; known: {sorted(nbedits.EDITS)}")
    vitgrade_report = fields.get("vitgrade report", fields["report"])
    report = {"nbgrader": fields["report"], "vitgrade": "" if vitgrade_report == "none" else vitgrade_report}
    description = " ".join(line.lstrip("# ").strip() for line in path.read_text().splitlines()
                           if line.startswith("#") and not KEYS.match(line))
    return Entry(path.stem, description, expect, reason, None, edit=(operation, args), report=report)


def load_notebooks(week: int, only: list[str] | None = None) -> list[Entry]:
    """The week's ``*.notebook`` entries (notebook-level edits of a reference submission)."""
    return [_notebook_entry(p) for p in sorted(weeks.get(week).zoo_dir.glob("*.notebook"))
            if not only or p.stem in only]


def load(week: int, only: list[str] | None = None, bystanders: bool = True, notebooks: bool = False) -> list[Entry]:
    """The week's ``*.mutant`` entries (with ``notebooks``, its ``*.notebook`` entries too) and the bystanders."""
    entries = []
    for path in sorted(weeks.get(week).zoo_dir.glob("*.mutant")):
        if path.stem.startswith("_") or only and path.stem not in only:
            continue
        expect, reason, fields = _header(path)
        chain = _chain(path)
        entries.append(Entry(path.stem, chain.description, expect, reason, chain,
                             kernel=fields.get("kernel", "yes") != "no", seconds=float(fields.get("seconds", 5)),
                             message=fields.get("message", "")))
    if notebooks:
        entries += load_notebooks(week, only)
    if bystanders:
        full = task_points(week)
        entries.append(Entry("bystander_reference", "the reference solution (must keep full marks)",
                             dict(full), "", None))
        entries.append(Entry("bystander_stub", "the untouched stub (must keep 0)",
                             {t: 0.0 for t in full}, "not implemented", None, "stub"))
    return entries


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for key, value in ZOO_ENV.items():
        env.setdefault(key, value)
    return env


def _outcome(name: str, data: dict, row_reason: str) -> Outcome:
    tasks = {task: earned for task, (earned, _) in data.get("tasks", {}).items()}
    messages = [t["message"] for t in data.get("tests", []) if t.get("message")]
    if data.get("error"):
        messages.append(data["error"])
    return Outcome(name, tasks, float(data.get("earned", 0.0)), data.get("status", "error"),
                   row_reason, messages, list(data.get("notebook", [])))


@dataclass
class PathRun:
    """One grading path over the zoo."""

    path: str
    outcomes: dict[str, Outcome]
    exit_code: int
    seconds: float
    report: list[str]  # tampering / problems the grading command reported
    leftovers: list[int]
    repo_changes: list[str]
    leaked: list[str] = field(default_factory=list)  # outputs that carry a decoy's secret


def _leftovers() -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if DAEMON_MARK.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            pass
    return found


def _repo_guard(week: int) -> integrity.Guard:
    info = weeks.get(week)
    return integrity.Guard([info.suite_dir("hidden"), weeks.SOLUTION_PACKAGE, info.zoo_dir])


@contextmanager
def decoys():
    """Plant the decoys in a fresh folder outside the checkout (world-readable), remove them after."""
    from vitgrade.build.generate import strip_markers

    top = Path(tempfile.mkdtemp(prefix="vitgrade-zoo-decoys-"))
    reference = (weeks.SOLUTION_PACKAGE / "attention.py").read_text()
    files = {
        "old-course-clone/solutions/vitcourse/attention.py": reference,
        "students-2025/bob/vitcourse/attention.py": strip_markers(reference),
        "home/alice/.ssh/id_ed25519": f"-----BEGIN OPENSSH PRIVATE KEY----- {DECOY_MARKER}\n",
        "home/alice/project/.env": f"API_TOKEN={DECOY_MARKER}\n",
        "home/alice/.cache/pip/vitcourse_answers/attention.py": strip_markers(reference),
    }
    for rel, text in files.items():
        (top / rel).parent.mkdir(parents=True, exist_ok=True)
        (top / rel).write_text(text)
    for path in [top, *top.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    saved = os.environ.get(DECOY_ENV)
    os.environ[DECOY_ENV] = DECOY_MARKER  # the grader's own secret, e.g. a database password
    try:
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)
        if saved is None:
            os.environ.pop(DECOY_ENV, None)
        else:
            os.environ[DECOY_ENV] = saved


def _leaked(folder: Path) -> list[str]:
    """Files under ``folder`` (graded notebooks, feedback) that carry the decoy marker."""
    return [str(p) for p in folder.rglob("*") if p.is_file() and p.suffix in (".ipynb", ".html", ".json")
            and DECOY_MARKER in p.read_text(errors="replace")]


def grade_vitgrade(week: int, entries: list[Entry], workdir: Path, jobs: int = 2) -> PathRun:
    """``vitgrade grade WEEK <every entry> --jobs N --out DIR`` in a subprocess."""
    guard = _repo_guard(week)
    subs = workdir / "submissions"
    paths = [e.make(subs / e.name, week) for e in entries]
    out = workdir / "out"
    start = time.monotonic()
    with decoys():
        proc = subprocess.run([sys.executable, "-m", "vitgrade.cli", "grade", str(week), *map(str, paths),
                               "--jobs", str(jobs), "--out", str(out), "-v"],
                              capture_output=True, text=True, env=_env(), stdin=subprocess.DEVNULL)
    seconds = time.monotonic() - start
    outcomes = {}
    book = {}
    if (out / "gradebook.json").exists():
        book = {row["student"]: row for row in json.loads((out / "gradebook.json").read_text())}
    for e in entries:
        data = json.loads((out / f"{e.name}.json").read_text()) if (out / f"{e.name}.json").exists() else {}
        outcomes[e.name] = _outcome(e.name, data, book.get(e.name, {}).get("reason", ""))
    report = [line for line in proc.stdout.splitlines()
              if line.startswith(("TAMPERING", "GRADEBOOK", "isolation:")) or "could not be graded" in line]
    if proc.returncode not in (0, 1):
        report.append(f"vitgrade grade crashed (exit {proc.returncode}): {proc.stderr[-500:]}")
    time.sleep(0.5)
    return PathRun("vitgrade", outcomes, proc.returncode, seconds, report, _leftovers(), guard.changes(),
                   _leaked(out))


def nbgrader_course(week: int, students: list[tuple[str, Entry]], course: Path) -> None:
    """A fresh nbgrader course in ``course`` with the week built and, for every (student id,
    entry), ``submitted/<id>/<assignment>``: the untouched release notebook and the entry's package
    (a notebook entry: the release notebook answered from the reference, then edited)."""
    from vitgrade.autograde import pipeline as nbp

    course.mkdir(parents=True, exist_ok=True)
    shutil.copy2(weeks.GRADING / "nbgrader_config.py", course / "nbgrader_config.py")
    nbp.build(week, course)
    for sid, entry in students:
        dest = nbp.make_submission(week, sid, entry.kind, entry.mutant, course,
                                   filled_notebook=entry.edit is not None)
        if entry.edit is not None:
            entry.apply_edit(dest / weeks.get(week).notebook_name)


def grade_nbgrader(week: int, entries: list[Entry], course: Path, jobs: int = 2) -> PathRun:
    """Build the week in a fresh nbgrader course, submit every entry (the untouched release
    notebook with the entry's package), and autograde them: the entries whose attack involves the
    notebook's kernel with the notebook re-run in the jailed kernel, the others score-only."""
    from vitgrade.autograde import pipeline as nbp

    guard = _repo_guard(week)
    saved = {k: os.environ.get(k) for k in [*ZOO_ENV, "VITGRADE_EXECUTE"]}
    os.environ.update({k: os.environ.get(k) or v for k, v in ZOO_ENV.items()})
    try:
        nbgrader_course(week, [(e.name, e) for e in entries], course)
        start = time.monotonic()
        reports = []
        with decoys():
            groups = {"all": [e for e in entries if e.kernel], "none": [e for e in entries if not e.kernel]}
            for mode, group in groups.items():
                if group:
                    os.environ["VITGRADE_EXECUTE"] = mode
                    reports.append(nbp.autograde_checked(week, [e.name for e in group], jobs, course,
                                                         cost={e.name: e.seconds for e in group}))
        seconds = time.monotonic() - start
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    report = nbp.AutogradeReport({s: r for rep in reports for s, r in rep.runs.items()},
                                 [t for rep in reports for t in rep.tampering],
                                 [p for rep in reports for p in rep.problems],
                                 {s: n for rep in reports for s, n in rep.notebooks.items()})
    outcomes = {}
    for e in entries:
        run = report.runs[e.name]
        verdict = run.verdict or {"status": "error", "error": f"nbgrader exit {run.returncode}"}
        result = SuiteResult.from_json(verdict) if "week" in verdict else None
        outcomes[e.name] = _outcome(e.name, verdict, reason(result) if result else verdict["error"])
    exit_code = 0 if report.ok else 1
    time.sleep(0.5)
    return PathRun("nbgrader", outcomes, exit_code, seconds, report.summary(), _leftovers(), guard.changes(),
                   _leaked(course / "autograded"))


def check(entry: Entry, outcome: Outcome, run: PathRun, hidden_lines: set[str]) -> list[str]:
    """Everything that is wrong with one entry's outcome (empty: as expected)."""
    from vitgrade.confine import isolate

    if (outcome.status == "error" and "tampering" in outcome.reason and run.exit_code != 0
            and isolate.level() != "root"):
        # Without a separate uid another submission could rewrite shared files (the hidden
        # tests); the grader then refuses to grade rather than grade wrongly, and says so.
        return []
    problems = []
    for task, want in entry.expect.items():
        got = outcome.tasks.get(task, 0.0)
        if abs(got - want) > 1e-6:
            problems.append(f"task {task}: expected {want:g}, got {got:g}")
    if outcome.status not in ("ok", "tampered"):
        problems.append(f"not graded: {outcome.reason}")
    if outcome.status == "tampered" and run.exit_code == 0:
        problems.append("tampering was flagged but the grading command exited 0")
    if entry.reason and entry.reason.lower() not in outcome.reason.lower():
        problems.append(f"reason {outcome.reason!r} does not mention {entry.reason!r}")
    if entry.message and not any(entry.message.lower() in m.lower() for m in outcome.messages):
        problems.append(f"no test's message mentions {entry.message!r}")
    problems += check_notebook_report(entry.report.get(run.path, ""), outcome.notebook)
    for message in outcome.messages + [outcome.reason]:
        if "\n" in message or "Traceback" in message:
            problems.append(f"message is not one clean line: {message[:120]!r}")
        if any(line in message for line in hidden_lines):
            problems.append(f"message quotes the hidden tests: {message[:120]!r}")
        if DECOY_MARKER in message:
            problems.append(f"message carries a decoy secret (student code could read it): {message[:120]!r}")
    return problems


def check_notebook_report(expected: str, notebook: list[str]) -> list[str]:
    """The notebook report says ``expected`` (a substring), or is empty when nothing is expected."""
    said = " | ".join(notebook)
    if expected and expected.lower() not in said.lower():
        return [f"notebook report {said[:200]!r} does not mention {expected!r}"]
    if not expected and notebook:
        return [f"unexpected notebook report: {said[:200]!r}"]
    return []


def hidden_lines(week: int) -> set[str]:
    return quoted_lines(weeks.get(week).suite_dir("hidden"))


def table(week: int, entries: list[Entry], runs: list[PathRun]) -> tuple[list[str], int]:
    """The zoo table (one row per entry and path) and the number of problems."""
    lines = [f"{'submission':<24} {'path':<9} {'expected':>8} {'got':>6}  {'status':<8} message / problems"]
    n_problems = 0
    hidden = hidden_lines(week)
    for run in runs:
        for e in entries:
            o = run.outcomes[e.name]
            problems = check(e, o, run, hidden)
            n_problems += len(problems)
            said = ("notebook: " + " | ".join(o.notebook)) if o.notebook else ""
            text = "; ".join(problems) if problems else (o.reason or said or "-")
            lines.append(f"{e.name:<24} {run.path:<9} {e.total:>8g} {o.points:>6g}  "
                         f"{o.status:<8} {'PROBLEM: ' if problems else ''}{text[:150]}")
        for extra in run.report:
            lines.append(f"{'':<24} {run.path:<9} reported: {extra[:160]}")
        if run.leftovers:
            n_problems += 1
            lines.append(f"{'':<24} {run.path:<9} PROBLEM: leftover processes {run.leftovers}")
        if run.leaked:
            n_problems += 1
            lines.append(f"{'':<24} {run.path:<9} PROBLEM: decoy secrets in graded output {run.leaked[:3]}")
        if run.repo_changes:
            n_problems += 1
            lines.append(f"{'':<24} {run.path:<9} PROBLEM: repository files changed {run.repo_changes[:5]}")
        lines.append(f"{'':<24} {run.path:<9} {len(entries)} submissions in {run.seconds:.0f} s, "
                     f"exit status {run.exit_code}")
    return lines, n_problems
