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
    # package: stub                     (optional: the untouched stub package beside it, not the reference)

Every other entry (and bystander) must get an empty notebook report: an untouched notebook is
never "repaired".

An entry whose attack is on the *other* submissions of a batch (issue 20, section 2) says so::

    # bystander: disk                   (its class: cpu, memory, processes, disk, leftovers, wire,
                                         race, namespaces, notebook)
    # needs: disk                       (optional: limits its expected score depends on; where one
                                         is not in force here, the entry is left out: SKIPPED)

and :func:`grade_bystanders` (``vitgrade zoo --bystanders``) grades each such entry in a batch with
two copies of the reference, all at once, with small limits (BYSTANDER_ENV), and checks that the
references keep full marks with clean feedback, finish within SLOWDOWN times their time alone
(judged on a quiet machine), that the batch finishes and that nothing is left.

:func:`grade_vitgrade` grades a set of entries
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
# Small limits per submission (vitgrade.confine.limits, .scratch): a 50 MB disk, 1 GB of memory for
# all its processes together, 64 processes and threads; the address space of each process is the
# default (6 GB: a process that has imported torch holds 3.2 GB of it, each thread 0.12 GB more).
ZOO_ENV = {"VITGRADE_TIME_SCALE": "0.25", "VITGRADE_TIMEOUT": "12", "VITGRADE_IMPORT_TIMEOUT": "40",
           "VITGRADE_MIN_LONG_TIMEOUT": "20", "VITGRADE_MEMORY_MB": "6144", "VITGRADE_CELL_TIMEOUT": "40",
           "VITGRADE_NOTEBOOK_BUDGET": "60", "VITGRADE_DISK_MB": "50", "VITGRADE_GROUP_MEMORY_MB": "1024",
           "VITGRADE_PROCESSES": "64"}
# Planted, readable by everyone, outside the checkout while the zoo is graded: what a grading
# machine holds that student code must not see (another copy of the course, another student's
# work, credentials, a pip cache). The marker must never reach a message or a notebook.
DECOY_MARKER = "VITGRADE-ZOO-DECOY-SECRET"
DECOY_ENV = "VITGRADE_ZOO_DB_PASSWORD"
DAEMON_MARK = "vitgrade-zoo-daemon"
# An entry's header fields.
KEYS = re.compile(r"#\s*(expect|reason|message|base|kernel|seconds|edit|report|vitgrade report|bystander|needs|"
                  r"package):\s*(.*)")


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
    # A harmful entry's attack on the other submissions of its batch (# bystander: disk, memory, ...),
    # checked by bystander mode (grade_bystanders); empty for the others.
    bystander: str = ""
    # The limits its expected score depends on (# needs: disk memory processes cpu): where one is not
    # in force on this machine the entry is not graded at all (see SKIPPED), and says so.
    needs: tuple[str, ...] = ()

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
    kind = fields.get("package", "solution")  # the package beside the notebook: the reference, or the stub
    if kind not in ("solution", "stub"):
        raise ValueError(f"{path}: '# package:' is 'solution' or 'stub', not {kind!r}")
    return Entry(path.stem, description, expect, reason, None, kind=kind, edit=(operation, args), report=report,
                 bystander=fields.get("bystander", ""), needs=tuple(fields.get("needs", "").split()))


def load_notebooks(week: int, only: list[str] | None = None) -> list[Entry]:
    """The week's ``*.notebook`` entries (notebook-level edits of a reference submission)."""
    return _in_force([_notebook_entry(p) for p in sorted(weeks.get(week).zoo_dir.glob("*.notebook"))
                      if not only or p.stem in only])


# Entries left out on this machine because a limit they need is not in force: name -> the limits.
SKIPPED: dict[str, tuple[str, ...]] = {}


def _in_force(entries: list[Entry]) -> list[Entry]:
    """The entries whose needed limits are in force here (the others go to SKIPPED)."""
    from vitgrade.confine import scratch

    here = scratch.bounded()
    kept = []
    for entry in entries:
        missing = tuple(n for n in entry.needs if n not in here)
        if missing:
            SKIPPED[entry.name] = missing
        else:
            kept.append(entry)
    return kept


def load(week: int, only: list[str] | None = None, bystanders: bool = True, notebooks: bool = False) -> list[Entry]:
    """The week's ``*.mutant`` entries (with ``notebooks``, its ``*.notebook`` entries too) and the
    bystanders; entries that need a limit this machine cannot set are left out (:data:`SKIPPED`)."""
    entries = []
    for path in sorted(weeks.get(week).zoo_dir.glob("*.mutant")):
        if path.stem.startswith("_") or only and path.stem not in only:
            continue
        expect, reason, fields = _header(path)
        chain = _chain(path)
        entries.append(Entry(path.stem, chain.description, expect, reason, chain,
                             kernel=fields.get("kernel", "yes") != "no", seconds=float(fields.get("seconds", 5)),
                             message=fields.get("message", ""), bystander=fields.get("bystander", ""),
                             needs=tuple(fields.get("needs", "").split())))
    entries = _in_force(entries)
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


def nbgrader_course(week: int, students: list[tuple[str, Entry]], course: Path, answered: bool = False) -> None:
    """A fresh nbgrader course in ``course`` with the week built and, for every (student id,
    entry), ``submitted/<id>/<assignment>``: the untouched release notebook and the entry's package
    (a notebook entry: the release notebook answered from the reference, then edited). With
    ``answered``, every entry that did the work (all but the untouched stub) submits the notebook
    answered from the reference, as a student who finished the week does: its kernel then runs the
    whole notebook (Week 1's trainings), not only the cells before the first unanswered one."""
    from vitgrade.autograde import pipeline as nbp

    course.mkdir(parents=True, exist_ok=True)
    shutil.copy2(weeks.GRADING / "nbgrader_config.py", course / "nbgrader_config.py")
    nbp.build(week, course)
    for sid, entry in students:
        filled = entry.edit is not None or (answered and entry.kind == "solution")
        dest = nbp.make_submission(week, sid, entry.kind, entry.mutant, course, filled_notebook=filled)
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


# ------------------------------------------------------------------------------ bystander mode
# What bystander mode adds to ZOO_ENV: the harmful entry's CPU share is half a core, so two references
# and it fit on a 2-core machine.
BYSTANDER_ENV = {"VITGRADE_CPUS": "0.5"}
SLOWDOWN = 2.0  # a reference's suite next to a harmful entry: at most this many times its time alone
# Times are judged only on a quiet machine: where other jobs keep the load average above the number of
# cores, a reference alone already varies by more than 2x (measured: 6.2 to 16.2 s at load 4 to 6 on
# 2 cores), and the times are reported, marked "under load", not judged.
QUIET_LOAD = float(os.cpu_count() or 1)


@dataclass
class BystanderBatch:
    """One batch of bystander mode: harmful entries and two copies of the reference, graded together."""

    entries: list[str]
    outcomes: dict[str, Outcome]
    seconds: dict[str, float]  # suite seconds per submission (the judge's own measure)
    exit_code: int
    wall: float
    limits: str
    left: list[str]  # files, mounts, groups or processes left after the batch
    report: list[str]
    load: float = 0.0  # the machine's 1-minute load average just before the batch (its own load is ~0)


@dataclass
class BystanderRun:
    week: int
    alone_runs: list[float]  # the reference's suite seconds graded alone, before and after the batches
    batches: list[BystanderBatch]
    limits: str
    seconds: float
    alone_loads: list[float] = field(default_factory=list)

    @property
    def quiet(self) -> bool:
        """Was the machine quiet enough for times to mean anything? The load average before every
        batch and every alone run (when this run's own processes were idle) at most the cores."""
        return max(self.alone_loads + [b.load for b in self.batches], default=0.0) <= QUIET_LOAD

    @property
    def alone(self) -> float:
        """The reference's time alone: the mean of the runs before and after (the machine's other
        load drifts; the batches ran in between)."""
        runs = [t for t in self.alone_runs if t > 0]
        return sum(runs) / len(runs) if len(runs) == len(self.alone_runs) and runs else 0.0


REFERENCES = ("reference_a", "reference_b")


# Bystander classes in the order batches take them: with several per batch, each batch gets one of the
# costlier attacks (CPU, memory, processes) and two cheap ones.
CLASSES = ("cpu", "memory", "processes", "disk", "wire", "namespaces", "leftovers", "race", "notebook")


def harmful(entries: list[Entry]) -> list[Entry]:
    """The entries whose attack is on the other submissions of a batch (``# bystander:``), in the
    order of CLASSES, taken in turn (one of each class before a second)."""
    found = [e for e in entries if e.bystander]
    rank = {c: i for i, c in enumerate(CLASSES)}
    return sorted(found, key=lambda e: (rank.get(e.bystander, len(CLASSES)), e.name))


def _grade_batch(week: int, folders: list[Path], out: Path, tmp: Path,
                 env: dict[str, str]) -> tuple[int, str, str, list[str]]:
    """``vitgrade grade`` of ``folders``, all at once, in its own TMPDIR and, where cgroups can be made,
    in a control group of its own: everything the batch starts that belongs to a submission (its
    worker, its children, its groups) is then inside that group, so whatever is left in it when the
    command has exited is the batch's leftover, exactly. Returns (exit, stdout, stderr, leftovers)."""
    from vitgrade.confine import limits

    container = limits.BatchGroups.create(f"vitgrade-zoo-{os.getpid()}-{tmp.parent.name}")
    procs = sorted({os.path.join(f, "cgroup.procs") for f, _ in container.folders.values()})

    def enter() -> None:
        for path in procs:
            with open(path, "w") as fh:
                fh.write(str(os.getpid()))

    try:
        proc = subprocess.run([sys.executable, "-m", "vitgrade.cli", "grade", str(week), *map(str, folders),
                               "--jobs", str(len(folders)), "--out", str(out)], preexec_fn=enter if procs else None,
                              capture_output=True, text=True, env=dict(env, TMPDIR=str(tmp)), stdin=subprocess.DEVNULL)
        time.sleep(0.3)  # a process killed at the very end leaves its group a moment later
        left = [f"cgroup {c}" for c in container.children()]
        left += [f"process {pid}" for pid in sorted(limits.Group(container.folders).pids())]
    finally:
        container.remove()
    return proc.returncode, proc.stdout, proc.stderr, left


def _scraps(tmp: Path) -> list[str]:
    """What a batch left in its TMPDIR: files, mounts."""
    from vitgrade.confine import scratch

    return [f"file {p}" for p in sorted(tmp.rglob("*"))] + [f"mount {m}" for m in scratch.mounted_under(tmp)]


def grade_bystanders(week: int, entries: list[Entry], workdir: Path, per_batch: int = 1,
                     progress=lambda line: None, alone_after: bool = True) -> BystanderRun:
    """Bystander mode: every harmful entry (``# bystander:``) graded in a batch with two copies of
    the reference, ``per_batch`` harmful entries per batch, all of a batch at once (``--jobs`` = its
    size). The references must keep full marks with clean feedback, and their suites must take at
    most SLOWDOWN times their time alone (the reference graded alone first, under the same limits);
    the batch must finish, and nothing may be left (TMPDIR, mounts, groups, processes). One zygote
    serves every batch (``$VITGRADE_ZYGOTE``), so a batch costs its grading only. ``alone_after``:
    grade the reference alone again after the batches (the mean of both is the baseline)."""
    from vitgrade.confine import scratch
    from vitgrade.confine.zygote import ENV as ZYGOTE_ENV
    from vitgrade.judging import judge

    env = _env()
    for key, value in BYSTANDER_ENV.items():
        env.setdefault(key, value)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the limits line below, and the zygote's clean environment, see them
    try:
        limits_line = scratch.describe()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    start = time.monotonic()
    todo = harmful(entries)
    per_batch = per_batch if per_batch > 0 else max(1, len(todo))  # 0: all of them in one batch
    n_batches = -(-len(todo) // per_batch)
    groups = [todo[i::n_batches] for i in range(n_batches)]  # round robin: one costly attack per batch
    batches = []
    with judge.new_zygote(week) as zygote, decoys():
        env[ZYGOTE_ENV] = zygote.address
        alone_loads = [os.getloadavg()[0]]
        alone_runs = [_alone(week, workdir / "alone0", env, progress)]
        for n, group in enumerate(groups):
            folder = workdir / f"batch{n}"
            subs = [e.make(folder / "subs" / e.name, week) for e in group]
            subs += [Entry(r, "", {}, "", None).make(folder / "subs" / r, week) for r in REFERENCES]
            (folder / "tmp").mkdir()
            load = os.getloadavg()[0]
            t0 = time.monotonic()
            code, out, err, left = _grade_batch(week, subs, folder / "out", folder / "tmp", env)
            wall = time.monotonic() - t0
            outcomes, seconds = {}, {}
            book = {}
            if (folder / "out" / "gradebook.json").exists():
                book = {row["student"]: row for row in json.loads((folder / "out" / "gradebook.json").read_text())}
            for name in [e.name for e in group] + list(REFERENCES):
                path = folder / "out" / f"{name}.json"
                result = json.loads(path.read_text()) if path.exists() else {}
                outcomes[name] = _outcome(name, result, book.get(name, {}).get("reason", ""))
                seconds[name] = float(result.get("seconds", 0.0))
            report = [line for line in out.splitlines() if line.startswith(
                ("TAMPERING", "GRADEBOOK", "NOT GRADED", "LEFTOVER", "retried", "grader:"))]
            if code not in (0, 1):
                report.append(f"vitgrade grade crashed (exit {code}): {err[-500:]}")
            limits = next((line for line in out.splitlines() if line.startswith("limits:")), "")
            batch = BystanderBatch([e.name for e in group], outcomes, seconds, code, wall, limits,
                                   left + _scraps(folder / "tmp") + [f"process {p}" for p in _leftovers()], report,
                                   load)
            batches.append(batch)
            progress(f"batch {n}: {', '.join(batch.entries)}: {wall:.0f} s, exit {code}; references "
                     + ", ".join(f"{outcomes[r].points:g} in {seconds[r]:.1f} s" for r in REFERENCES))
        if alone_after:
            alone_loads.append(os.getloadavg()[0])
            alone_runs.append(_alone(week, workdir / "alone1", env, progress))
    return BystanderRun(week, alone_runs, batches, limits_line, time.monotonic() - start, alone_loads)


def _alone(week: int, folder: Path, env: dict[str, str], progress) -> float:
    """The reference graded alone, with the same limits and zygote: its suite seconds (0: failed)."""
    ref = Entry("reference_alone", "", {}, "", None).make(folder / "subs" / "reference_alone", week)
    (folder / "tmp").mkdir(parents=True)
    code, _, _, _ = _grade_batch(week, [ref], folder / "out", folder / "tmp", env)
    path = folder / "out" / "reference_alone.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    full = round(sum(task_points(week).values()), 6)
    ok = code == 0 and abs(float(data.get("earned", -1)) - full) < 1e-6
    progress(f"reference alone: {data.get('earned')} points in {data.get('seconds', 0):.1f} s (exit {code}, "
             f"load {os.getloadavg()[0]:.1f})")
    return float(data.get("seconds", 0.0)) if ok else 0.0


def check_bystanders(week: int, entries: list[Entry], run: BystanderRun,
                     judge_time: bool | None = None) -> dict[str, list[str]]:
    """Problems per batch (keyed by its entries' names joined with '+'); empty lists: as required.
    ``judge_time``: whether a reference slower than SLOWDOWN times alone is a problem (default: when
    the machine was quiet, :attr:`BystanderRun.quiet`)."""
    judge_time = run.quiet if judge_time is None else judge_time
    full = round(sum(task_points(week).values()), 6)
    by_name = {e.name: e for e in entries}
    hidden = hidden_lines(week)
    problems: dict[str, list[str]] = {}
    if run.alone <= 0:
        problems["alone"] = [f"the reference graded alone did not get full marks cleanly ({run.alone_runs})"]
    for batch in run.batches:
        found = []
        fake = PathRun("vitgrade", batch.outcomes, batch.exit_code, batch.wall, batch.report, [], [])
        for name in batch.entries:
            found += [f"{name}: {p}" for p in check(by_name[name], batch.outcomes[name], fake, hidden)]
        for ref in REFERENCES:
            o = batch.outcomes[ref]
            if abs(o.points - full) > 1e-6 or o.status != "ok":
                found.append(f"{ref}: {o.points:g}/{full:g}, status {o.status}: {o.reason}")
            if o.messages or o.notebook:
                found.append(f"{ref}: feedback not clean: {(o.messages + o.notebook)[:2]}")
            if judge_time and run.alone > 0 and batch.seconds[ref] > SLOWDOWN * run.alone:
                found.append(f"{ref}: suite took {batch.seconds[ref]:.1f} s, more than {SLOWDOWN:g}x its "
                             f"{run.alone:.1f} s alone")
        if batch.exit_code != 0:
            found.append(f"the batch exited {batch.exit_code}: {batch.report[:3]}")
        missing = [n for n, o in batch.outcomes.items() if o.status not in ("ok", "tampered")]
        if missing:
            found.append(f"not graded in the batch: {', '.join(missing)}")
        found += [f"left after the batch: {left}" for left in batch.left[:5]]
        found += [f"reported: {line}" for line in batch.report if not line.startswith("grader:")]
        problems["+".join(batch.entries)] = found
    return problems


def bystander_table(week: int, entries: list[Entry], run: BystanderRun) -> tuple[list[str], int]:
    problems = check_bystanders(week, entries, run)
    loads = ", ".join(f"{x:.1f}" for x in run.alone_loads[:1] + [b.load for b in run.batches] + run.alone_loads[1:])
    by_name = {e.name: e for e in entries}
    both = " and ".join(f"{t:.1f}" for t in run.alone_runs)
    alone = (f"{run.alone:.1f} s" if len(run.alone_runs) == 1 else
             f"{both} s before and after the batches, mean {run.alone:.1f} s")
    lines = [f"bystander mode, week {week}: {run.limits}",
             f"the reference alone (suite): {alone}; every batch: harmful entries + {' + '.join(REFERENCES)}, "
             "all at once",
             f"{'entry (class)':<36} {'expected':>8} {'got':>5}   {'references':<11} "
             f"{'suite s (alone ' + format(run.alone, '.1f') + ')':<24} batch  result"]
    for batch in run.batches:
        key = "+".join(batch.entries)
        refs = "/".join(f"{batch.outcomes[r].points:g}" for r in REFERENCES)
        times = " / ".join(f"{batch.seconds[r]:.1f}" for r in REFERENCES)
        found = problems[key]
        for i, name in enumerate(batch.entries):
            e, o = by_name[name], batch.outcomes[name]
            tail = ("; ".join(found) if found else "ok") if i == 0 else ""
            lines.append(f"{name + ' (' + e.bystander + ')':<36} {e.total:>8g} {o.points:>5g}   "
                         f"{refs if i == 0 else '':<11} {times if i == 0 else '':<24} "
                         f"{(format(batch.wall, '.0f') + ' s') if i == 0 else '':>5}  {tail[:200]}")
    for name, missing in sorted(SKIPPED.items()):
        if by_name.get(name) is None:
            lines.append(f"{name:<36} not run here: needs {', '.join(missing)} (not in force on this machine)")
    lines.append(f"{len(run.batches)} batches in {run.seconds:.0f} s; load average before each run: {loads} "
                 f"on {os.cpu_count()} cores: " + ("quiet, times judged" if run.quiet else
                                                  f"UNDER LOAD, times reported, not judged (> {QUIET_LOAD:g})"))
    lines += [f"PROBLEM: {p}" for p in problems.get("alone", [])]
    n = sum(len(v) for v in problems.values())
    return lines, n
