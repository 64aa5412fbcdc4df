"""``vitgrade grade``: grade submissions against a week's hidden tests.

A submission is a folder holding ``vitcourse/`` (or ``src/vitcourse/``). Before any student code
runs, every submission's package is read into memory (:class:`vitgrade.integrity.Snapshot`)
and everything that must not change is hashed (the submissions, the hidden tests, the
solutions, the output folder). Each submission is then graded from its snapshot, on its own
working copy, in its own judge process, with its code in a sandboxed worker; ``--jobs`` grades
several at once. At the end the hashes are compared again: a change is tampering, reported in
the summary and the exit status. The per-student JSON files and the gradebook
(``gradebook.csv`` and ``gradebook.json``) are written once, from memory, after the last
student's code has stopped, and read back to check they say what was decided.

When a submission folder holds the week's notebook (or a renamed one), it is checked like the
nbgrader path checks it (:func:`vitgrade.autograde.repair.inspect_submission`) before any student
code runs, and what was found is reported (the ``notebook`` column and JSON key, one ``notebook``
line per finding in the summary); its structure never changes a score or the exit status. A week
whose tasks are graded from the report the notebook shows (:attr:`vitgrade.weeks.Week.notebook_tasks`)
also takes the notebook's bytes into the snapshot (:func:`submitted_notebook`), for those tasks'
hidden tests, which read its saved outputs in the judge.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from vitgrade import settings, weeks
from vitgrade.confine import isolate, scratch
from vitgrade.confine import zygote as zygote_mod
from vitgrade.judging import integrity, judge
from vitgrade.judging.results import SuiteResult, reason

FIELDS = ["student", "week", "points", "max", "status", "reason", "notebook"]


def submission_root(path: Path) -> Path:
    for candidate in (path, path / "src"):
        if (candidate / weeks.PACKAGE).is_dir():
            return candidate
    return path  # graded as empty: every test fails with "could not import"


@dataclass
class Run:
    week: int
    results: dict[str, SuiteResult]
    tampering: list[str] = field(default_factory=list)  # protected paths that changed
    gradebook_problems: list[str] = field(default_factory=list)
    notebooks: dict[str, list[str]] = field(default_factory=dict)  # what each notebook looked like (not graded)
    retried: dict[str, str] = field(default_factory=dict)  # student -> why the first attempt gave no verdict
    leftovers: list[str] = field(default_factory=list)  # scratch, mounts, groups left at the end (a bug)
    events: list[str] = field(default_factory=list)  # e.g. the fork server died and was restarted

    @property
    def failed(self) -> list[str]:
        return [n for n, r in self.results.items() if r.status != "ok"]

    @property
    def not_graded(self) -> list[str]:
        """Students without a verdict: the grader's side failed twice (see judge.not_graded)."""
        return [n for n, r in self.results.items() if judge.not_graded(r)]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.tampering and not self.gradebook_problems and not self.leftovers


def snapshot(path: Path, week: int | None = None) -> integrity.Snapshot:
    """The submission's package as it is now, before any student code runs; for a week that grades its
    notebook (:attr:`vitgrade.weeks.Week.notebook_tasks`), with the notebook (:func:`submitted_notebook`)."""
    snap = integrity.Snapshot.take(submission_root(path) / weeks.PACKAGE, path)
    if week is not None and weeks.get(week).notebook_tasks:
        snap.notebook, snap.notebook_why = submitted_notebook(weeks.get(week), Path(path))
    return snap


def submitted_notebook(week: weeks.Week, folder: Path) -> tuple[bytes | None, str]:
    """The bytes of the submission's notebook as submitted (found as the notebook report finds it, renamed
    included), or None and why: there is none, it is a link or not a file, it is larger than
    ``VITGRADE_NOTEBOOK_MB``. Opened without following a link or blocking on a FIFO."""
    from vitgrade.autograde import repair

    path = repair.find_notebook(week, folder)
    if path is None:
        return None, f"no notebook {week.notebook_name} in your submission"
    name = os.path.relpath(path, folder)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        what = "a link, not a file" if exc.errno == errno.ELOOP else f"unreadable ({exc.strerror})"
        return None, f"your notebook {name} is {what}; it was not read"
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None, f"your notebook {name} is not a regular file; it was not read"
        if info.st_size > repair.limit_bytes():
            return None, (f"your notebook {name} is {info.st_size / 2**20:.0f} MB (the limit is "
                          f"{settings.notebook_mb():g} MB); it was not read")
        return fh.read(repair.limit_bytes()), ""


def grade_many(week: int, paths: list[Path], out_dir: Path | None, jobs: int = 1,
               protect: list[Path] = (), zygote: zygote_mod.Zygote | None = None) -> Run:
    """Grade ``paths`` (see the module docstring). Each submission runs in its own scratch inside
    the batch's (:mod:`vitgrade.confine.scratch`: its own disk quota and control group), removed
    after its judge whatever happened; a submission the grader could not grade (its own files, a
    judge or the fork server died, which is then restarted) is graded once more, then reported
    as not graded; the batch goes on. At the end nothing may be left of any scratch.

    ``zygote``: one the caller started (and closes), e.g. before importing this module; by default
    the batch starts its own first thing, and prepares (snapshots, hashes) while it imports."""
    isolate.protect_self()
    names = [p.name for p in paths]
    if len(set(names)) != len(names):
        raise SystemExit("two submissions have the same folder name; rename one")
    with contextlib.ExitStack() as stack:
        start_error = None
        if zygote is None:
            try:
                zygote = stack.enter_context(batch_zygote(week, wait=False))
            except (OSError, RuntimeError) as exc:
                start_error = exc
        run = _grade_many(week, paths, out_dir, jobs, protect, zygote, start_error)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, result in run.results.items():
            (out_dir / f"{name}.json").write_text(json.dumps({**result.to_json(), "notebook": run.notebooks[name]},
                                                             indent=1))
        write_gradebook(week, run.results, out_dir, run.notebooks)
        run.gradebook_problems = check_gradebook(run.results, out_dir)
    return run


def _grade_many(week: int, paths: list[Path], out_dir: Path | None, jobs: int, protect: list[Path],
                zygote: zygote_mod.Zygote | _Borrowed | None, start_error: Exception | None) -> Run:
    names = [p.name for p in paths]
    snapshots = {p.name: snapshot(p, week) for p in paths}
    notebooks = notebook_reports(week, paths)
    hidden = weeks.get(week).suite_dir("hidden")
    guarded = list(paths) + [hidden, weeks.SOLUTION_PACKAGE] + list(protect)
    if out_dir is not None and out_dir.exists():
        guarded.append(out_dir)
    guard = integrity.Guard(guarded)

    retried: dict[str, str] = {}

    def attempt(path: Path) -> SuiteResult:
        try:
            if not zygote.ensure():
                why = "; ".join(zygote.notes[-1:]) or "it is not running"
                return SuiteResult(week=week, suite="hidden", root=str(path), status="error",
                                   error=f"{judge.NOT_GRADED}the fork server could not start ({why})")
            return judge.run(week, snapshots[path.name], "hidden", tests_digest=digest, zygote=zygote.address,
                             batch=batch)
        except Exception as exc:  # noqa: BLE001 - one submission's grading error never stops the batch
            return SuiteResult(week=week, suite="hidden", root=str(path), status="error",
                               error=f"{judge.NOT_GRADED}{type(exc).__name__}: {exc}")

    def grade_one(path: Path) -> SuiteResult:
        result = attempt(path)
        if judge.not_graded(result):  # the grader's failure, not the student's: once more
            retried[path.name] = result.error
            result = attempt(path)
            if judge.not_graded(result):
                result.error += " (graded twice)"
        result.root = str(path)
        return result

    leftovers: list[str] = []
    try:
        if start_error is not None:
            raise start_error
        digest = judge.tests_digest(hidden)
        with scratch.Batch() as batch, ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            results = dict(zip(names, pool.map(grade_one, paths)))
            events = zygote.restarts + zygote.notes
        leftovers = batch.leftovers_found
    except (OSError, RuntimeError) as exc:  # the grader's own setup (its temp folder, the zygote)
        why = f"{judge.NOT_GRADED}the grader could not start ({type(exc).__name__}: {exc})"
        results = {p.name: SuiteResult(week=week, suite="hidden", root=str(p), status="error", error=why)
                   for p in paths}
        events = []
    return Run(week, results, tampering=guard.changes(), notebooks=notebooks, retried=retried,
               leftovers=leftovers, events=events)


class _Borrowed:
    """A zygote someone else started and watches (``$VITGRADE_ZYGOTE``, e.g. the zoo's bystander mode,
    which grades many batches): used as it is, restarted by its owner."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.restarts: list[str] = []
        self.notes: list[str] = []

    def ensure(self, timeout: float = 60.0) -> bool:
        return os.path.exists(self.address)

    def __enter__(self) -> _Borrowed:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def batch_zygote(week: int, wait: bool = True) -> zygote_mod.Zygote | _Borrowed:
    """The batch's zygote: ``$VITGRADE_ZYGOTE`` when set, else a new one (watched and restarted)."""
    address = os.environ.get(zygote_mod.ENV)
    return _Borrowed(address) if address else zygote_mod.for_week(week, wait=wait)


def notebook_reports(week: int, paths: list[Path]) -> dict[str, list[str]]:
    """What each submission's notebook looks like, if it has one (nbformat is imported only then)."""
    if not any(next(p.rglob("*.ipynb"), None) for p in paths):
        return {p.name: [] for p in paths}
    from vitgrade.autograde import repair

    return {p.name: repair.inspect_submission(weeks.get(week), p) for p in paths}


def rows(week: int, results: dict[str, SuiteResult], notebooks: dict[str, list[str]] | None = None) -> list[dict]:
    return [{"student": name, "week": week, "points": r.earned, "max": r.max_points,
             "status": r.status, "reason": reason(r), "notebook": " | ".join((notebooks or {}).get(name, []))}
            for name, r in sorted(results.items())]


def write_gradebook(week: int, results: dict[str, SuiteResult], out_dir: Path,
                    notebooks: dict[str, list[str]] | None = None) -> None:
    table = rows(week, results, notebooks)
    (out_dir / "gradebook.json").write_text(json.dumps(table, indent=1))
    with open(out_dir / "gradebook.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(table)


def check_gradebook(results: dict[str, SuiteResult], out_dir: Path) -> list[str]:
    """Read the gradebook back: every student once, with the points that were decided."""
    with open(out_dir / "gradebook.csv") as fh:
        written = {row["student"]: float(row["points"]) for row in csv.DictReader(fh)}
    problems = [f"{n}: gradebook says {written.get(n)}, grader decided {r.earned}"
                for n, r in results.items() if written.get(n) != r.earned]
    problems += [f"{n}: in the gradebook but not graded" for n in set(written) - set(results)]
    return problems


def table(result: SuiteResult) -> str:
    lines = [f"{'test':<52} {'points':>7}  result"]
    for t in result.tests:
        lines.append(f"{t.name[:52]:<52} {t.earned:>3g}/{t.points:<3g}  "
                     + ("pass" if t.outcome == "passed" else f"FAIL: {t.message}"))
    lines.append(f"{'total':<52} {result.earned:>3g}/{result.max_points:<3g}")
    if result.status != "ok":
        lines.append(f"GRADING {result.status.upper()}: {result.error}")
    return "\n".join(lines)
