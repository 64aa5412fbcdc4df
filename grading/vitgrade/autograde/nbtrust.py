"""nbgrader preprocessors that make a notebook's score the judge's verdict, not the kernel's.

nbgrader scores a graded code cell from the outputs the notebook's kernel produced; that kernel
runs the student's package (the notebook imports it), so a hostile module could patch
``grade_task`` or print a forged score there. With these preprocessors in
``c.Autograde.autograde_preprocessors`` (see ``grading/nbgrader_config.py``):

1. :class:`TrustedExecute` (replaces ``Execute``) takes a :class:`~vitgrade.integrity.Snapshot`
   of the student's package *before* the kernel starts (and checks it against the digest the
   orchestrator computed from ``submitted/`` before any student's code ran, when given), runs
   the kernel jailed (:mod:`vitgrade.jail`), time-boxed (per cell and per notebook), survives a
   dead or unresponsive kernel, and kills whatever the kernel left behind.
   With ``VITGRADE_EXECUTE=none`` it starts no kernel at all (the notebook keeps no outputs
   but the graded cells' verdicts): the same score, about half the grading time per student.
2. :class:`TrustedVerdict` (just before ``SaveAutoGrades``) takes the verdict of the hidden suite,
   run through :func:`vitgrade.judge.run` in a separate process (started by :class:`TrustedExecute`
   as soon as the snapshot is taken, so it runs while the kernel does; ``VITGRADE_OVERLAP=0``: here,
   after the kernel), on a working copy of the snapshot, with the
   hidden tests from ``source/<assignment>/hidden_tests`` (never from the student's folder), and
   overwrites every graded task cell's outputs with the verdict: its report lines and a numeric
   ``execute_result`` that nbgrader records as partial credit. Nothing the kernel printed in
   those cells survives. The verdict also goes, as JSON, to the orchestrator's private pipe
   (``VITGRADE_VERDICT_FD``) and to ``<course>/.vitgrade/verdicts/<assignment>/<student>.json``.

3. :class:`RepairingExporter` (``c.Autograde.exporter_class``) reads each submitted notebook
   through :mod:`vitgrade.autograde.repair` before nbgrader's own checks: a missing, duplicated,
   split, merged or retyped graded cell is put back, a notebook that cannot be read (not JSON,
   too large) is replaced by the release notebook, and every repair becomes a line in a Markdown
   cell at the top of the autograded notebook (so in the student's feedback) and in the verdict
   (``notebook``), so a notebook's structure never decides a score.

A suite that cannot run fails the student's autograde (non-zero exit), never a silent 0.
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import nbformat
from jupyter_client.manager import AsyncKernelManager
from nbconvert.exporters import NotebookExporter
from nbformat.notebooknode import NotebookNode
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import Execute, NbGraderPreprocessor

from vitgrade import settings, weeks
from vitgrade.autograde import repair
from vitgrade.confine import isolate, scratch
from vitgrade.judging import integrity, judge
from vitgrade.judging.results import SuiteResult, one_line, task_report

VERDICT_FD_ENV = "VITGRADE_VERDICT_FD"  # one JSON line per student graded by this process
EXPECT_ENV = "VITGRADE_EXPECT_DIGEST"  # JSON: student -> digest of the submitted modules
TESTS_ENV = "VITGRADE_TESTS_DIGEST"  # digest of source/<assignment>/hidden_tests when the batch started
KERNEL_FSIZE = 64 * 2**20
# (student, assignment) -> the submitted notebook with its outputs, as RepairingExporter read it, until
# TrustedExecute puts it into the snapshot (repair.submitted_copy): nbgrader clears outputs in between.
SUBMITTED: dict[tuple[str, str], tuple[bytes | None, str]] = {}
NOT_RUN = ("[This notebook was not re-run at grading (VITGRADE_EXECUTE=none). Your score comes from "
           "the hidden tests, run on your package outside the notebook; see the graded cells.]\n")


def per_student(env: str, student: str):
    """This student's value of a JSON map the orchestrator passed in ``env`` (None if absent)."""
    try:
        return json.loads(os.environ.get(env, "{}")).get(student)
    except (json.JSONDecodeError, AttributeError):
        return None


def modules_digest(week: weeks.Week, files: dict[str, bytes]) -> str:
    """Digest of the week's exercise modules (what the student submits; the rest is overwritten)."""
    import hashlib

    return integrity.tree_digest({m: hashlib.sha256(files.get(m, b"")).hexdigest() for m in week.modules})


def task_of(cell: NotebookNode) -> str | None:
    """The task of an autograder cell ("" for a graded test cell that is not a task's); None otherwise."""
    meta = cell.metadata.get("nbgrader", {})
    if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
        return weeks.grade_id_task(meta.get("grade_id", "")) or ""
    return None


class JailedKernelManager(AsyncKernelManager):
    """Starts the kernel through ``python -m vitgrade.confine.jail`` with the given policy."""

    jail_policy: isolate.Policy | None = None

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        cmd = super().format_kernel_cmd(extra_arguments)
        if self.jail_policy is None:
            return cmd
        return [sys.executable, "-m", "vitgrade.confine.jail", json.dumps(asdict(self.jail_policy)), "--", *cmd]


class TrustedExecute(Execute):
    """nbgrader's Execute, with a pre-kernel snapshot, a jailed kernel and a time budget."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", JailedKernelManager)
        super().__init__(*args, **kwargs)
        self._policy: isolate.Policy | None = None
        self._deadline = float("inf")

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        km.jail_policy = self._policy
        return km

    def preprocess(self, nb, resources=None, km=None):
        info = resources["nbgrader"]
        here = Path(resources["metadata"]["path"]).resolve()
        week = weeks.by_assignment(info["assignment"])
        snapshot = integrity.Snapshot.take(here / weeks.PACKAGE, origin=info["student"])
        snapshot.notebook, snapshot.notebook_why = SUBMITTED.pop((info["student"], info["assignment"]), (None, ""))
        tampering = []
        expected = per_student(EXPECT_ENV, info["student"])
        if expected and expected != modules_digest(week, snapshot.files):
            tampering.append(f"{info['student']}'s submitted modules changed after collection")
        trusted = {"snapshot": snapshot, "week": week.number, "tampering": tampering, "kernel": "",
                   "notebook": repair.recorded(nb)}  # the repairs RepairingExporter made
        resources["vitgrade"] = trusted
        if settings.overlap_judge():
            # The hidden suite needs only the snapshot: it runs meanwhile, in its own processes and limits,
            # while the kernel re-runs the notebook (a batch's waits on the kernel no longer leave a core idle).
            trusted["verdict"] = JUDGES.submit(_judge, self.config, info["assignment"], trusted)
        if not settings.execute_notebook():
            # Sanitising already cleared every output; the verdict fills the graded cells.
            first = next((cell for cell in nb.cells if cell.cell_type == "code"), None)
            if first is not None:
                first.outputs = [NotebookNode(output_type="stream", name="stdout", text=NOT_RUN)]
            trusted["kernel"] = "not run (VITGRADE_EXECUTE=none)"
            return nb, resources
        # The jail adds the kernel's own folders to the view (its notebook folder, a home), on the
        # submission's own disk quota, and the kernel joins the submission's control group: the
        # same limits as the sandbox worker (vitgrade.confine.scratch), removed after it.
        own = None
        try:
            batch = scratch.Batch.from_env()  # the orchestrator's batch (autograde_checked)
            if batch is None:
                batch = own = scratch.Batch()
            space = batch.scratch(f"kernel-{info['student']}")
        except OSError as exc:  # the grader's side: the notebook is not re-run; the verdict is the judge's
            if own is not None:
                own.close()
            trusted["kernel"] = f"not run: the grader could not prepare the kernel's folders ({exc})"
            self.log.error("%s: %s", info["student"], trusted["kernel"])
            return nb, resources
        # The instructor's read-only data (VIT_DATA_DIR: datasets, weights; VIT_COURSE_RUNS: the course's runs)
        # is in the kernel's view when it is a folder; the kernel writes its own caches in its home.
        shared = [os.environ[k] for k in ("VIT_DATA_DIR", "VIT_COURSE_RUNS")
                  if os.path.isabs(os.environ.get(k, "")) and os.path.isdir(os.environ[k])]
        self._policy = isolate.new_policy(settings.memory_mb(), KERNEL_FSIZE, network=True, read_only=shared)
        self._policy.cgroups = space.group.procs_files if space.group else []
        if space.group is None or "pids" not in space.group.folders:
            self._policy.processes = settings.processes()
        self._policy.scratch = str(space.student)
        self._deadline = time.monotonic() + settings.notebook_budget()
        try:
            super().preprocess(nb, resources, km)
        except Exception as exc:  # noqa: BLE001 - a dead or stuck kernel is the notebook's problem
            trusted["kernel"] = f"{type(exc).__name__}: {one_line(str(exc))}"
            self.log.warning("the student's kernel failed (%s); grading continues", trusted["kernel"])
        finally:
            isolate.kill_leftovers(self._policy)
            if space.oom_kills():
                trusted["kernel"] = (trusted["kernel"] + "; " if trusted["kernel"] else "") + (
                    f"the notebook's processes ran out of memory ({settings.group_memory_mb()} MB for all together)")
            space.close()
            if own is not None:
                own.close()
        return nb, resources

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and time.monotonic() > self._deadline:
            cell.outputs = [NotebookNode(output_type="stream", name="stdout",
                                         text="[not run: the notebook used up its time budget]\n")]
            return cell, resources
        return super().preprocess_cell(cell, resources, index)


JUDGES = ThreadPoolExecutor(max_workers=1, thread_name_prefix="judge")  # one student at a time per nbgrader process


def _judge(config, assignment: str, trusted: dict) -> SuiteResult:
    """The hidden suite on the snapshot taken before the kernel started, with the tests from
    ``source/<assignment>/hidden_tests`` (never the student's folder), checked against the batch's digest."""
    coursedir = CourseDirectory(config=config)
    source = Path(coursedir.format_path(coursedir.source_directory, ".", assignment))
    return judge.run(trusted["week"], trusted["snapshot"], "hidden", tests_dir=source / "hidden_tests",
                     tests_digest=os.environ.get(TESTS_ENV) or None)


class TrustedVerdict(NbGraderPreprocessor):
    """Overwrite every graded task cell with the judge's verdict (see the module docstring)."""

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        trusted = resources.get("vitgrade")
        if trusted is None:
            raise RuntimeError("TrustedVerdict needs TrustedExecute instead of Execute in "
                               "c.Autograde.autograde_preprocessors")
        coursedir = CourseDirectory(config=self.config)
        started = trusted.get("verdict")  # the judge TrustedExecute started beside the kernel
        waited = time.monotonic()
        result = started.result() if started is not None else _judge(self.config, info["assignment"], trusted)
        waited = time.monotonic() - waited  # what the judge added after the kernel: ~0 when it ran alongside
        retried = ""
        if judge.not_graded(result):  # the grader's side failed, not the student's code: once more
            retried = result.error
            self.log.warning("no verdict for %s (%s); grading it again", info["student"], retried)
            result = _judge(self.config, info["assignment"], trusted)
            if judge.not_graded(result):
                result.error += " (graded twice)"
        result.root = info["student"]
        if trusted["tampering"]:
            result.tampering += trusted["tampering"]
            if result.status == "ok":
                result.status, result.error = "tampered", "; ".join(trusted["tampering"])
        verdict = result.to_json()
        verdict.update(student=info["student"], assignment=info["assignment"], kernel=trusted["kernel"],
                       notebook=trusted["notebook"], retried=retried, judge_wait=round(waited, 2))
        self._deliver(verdict, Path(coursedir.root))
        if result.status == "error":
            raise RuntimeError(f"vitgrade could not grade {info['student']}: {result.error}")
        for cell in nb.cells:
            task = task_of(cell)
            if task is None:
                continue
            if not task:
                raise RuntimeError(f"graded cell {cell.metadata['nbgrader']['grade_id']} is not a "
                                   "task_N_k cell: its score would come from the student's kernel")
            cell.outputs = self._outputs(result, task, cell.get("execution_count"))
        return nb, resources

    @staticmethod
    def _outputs(result: SuiteResult, task: str, count) -> list[NotebookNode]:
        earned, lines = task_report(result, task, " (graded outside your notebook)")
        return [
            NotebookNode(output_type="stream", name="stdout", text="\n".join(lines) + "\n"),
            NotebookNode(output_type="execute_result", execution_count=count, metadata={},
                         data={"text/plain": f"{earned:g}"}),
        ]

    def _deliver(self, verdict: dict, course: Path) -> None:
        folder = course / ".vitgrade" / "verdicts" / verdict["assignment"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{verdict['student']}.json").write_text(json.dumps(verdict, indent=1))
        fd = os.environ.get(VERDICT_FD_ENV)
        if fd:  # one line per student: this process may grade several
            try:
                data = (json.dumps(verdict) + "\n").encode()
                while data:
                    data = data[os.write(int(fd), data):]
            except OSError as exc:
                self.log.error("could not send the verdict to the orchestrator: %s", exc)


class RepairingExporter(NotebookExporter):
    """nbgrader's notebook exporter, reading each *submitted* notebook through
    :func:`vitgrade.autograde.repair.load` against the release notebook (``release/<assignment>/``):
    it never fails to read, and the notebook that nbgrader's own checks (``DeduplicateIds``,
    ``OverwriteCells``, ``CheckCellMetadata``) see carries each graded cell once. The repairs, with
    the orchestrator's (a renamed or missing notebook, ``VITGRADE_NOTEBOOK_NOTES``), are recorded
    by :func:`vitgrade.autograde.repair.annotate`. The second read (autograde's own copy) is plain."""

    def from_file(self, file_stream, resources=None, **kw):
        info = (resources or {}).get("nbgrader")
        path = Path(file_stream.name).resolve()
        coursedir = CourseDirectory(config=self.config)
        if info is None or path.parent == Path(coursedir.format_path(
                coursedir.autograded_directory, info["student"], info["assignment"])).resolve():
            return super().from_file(file_stream, resources=resources, **kw)
        release_dir = Path(coursedir.format_path(coursedir.release_directory, ".", info["assignment"]))
        try:
            release = nbformat.read(release_dir / f"{info['notebook']}.ipynb", as_version=4)
        except OSError as exc:
            raise RuntimeError(f"the release notebook is needed to check submissions ({exc}): "
                               "run nbgrader generate_assignment") from exc
        nb, notes = repair.load(path, release)
        SUBMITTED[(info["student"], info["assignment"])] = repair.submitted_copy(info["assignment"], nb, notes)
        notes = [str(n) for n in per_student(repair.NOTES_ENV, info["student"]) or []] + notes
        for note in notes:
            self.log.warning("notebook repaired for %s: %s", info["student"], note)
        return self.from_notebook_node(repair.annotate(nb, notes), resources=resources, **kw)
