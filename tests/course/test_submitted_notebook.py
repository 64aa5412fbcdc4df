"""The submitted notebook reaches the judge on both grading paths, and never the student's process.

A week whose tasks are graded from the report its notebook shows (``Week.notebook_tasks``, Week 8's
Task 8.3) needs the notebook *as submitted*, saved outputs included: ``vitgrade grade`` takes its bytes
into the snapshot with the package (found as the notebook report finds it, renamed included, within
``VITGRADE_NOTEBOOK_MB``); the nbgrader path takes the notebook its exporter read and repaired, before
nbgrader's sanitizing clears the outputs. ``judge.working_copy`` writes it beside the package for the
judge (``vitgrade.hidden.submitted_notebook``); the sandbox copies only the package into its view.
"""

import json
import os
import shutil

import nbformat
import pytest

from vitgrade import weeks
from vitgrade.build import submissions
from vitgrade.judging import grade, integrity, judge

WEEK = weeks.get(8)
MARK = "MARK" + "ER-saved-output"  # split: the probe's own file must not carry it

JUDGE_TESTS = '''
import pytest
from vitgrade.hidden import submitted_notebook
from vitgrade.judging import api

@pytest.mark.task("{task}", points=1)
def test_the_judge_reads_the_saved_outputs():
    nb = submitted_notebook()
    texts = [o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any("{mark}" in t for t in texts), "the saved output did not arrive"
'''
SANDBOX_TEST = '''
@pytest.mark.task("{task}", points=1)
def test_the_student_process_never_sees_it(student):
    seen = student.probe("look", judge_copy=str(api._NOTEBOOK["path"]))
    assert seen == [], seen
'''
PROBES = '''
def look(judge_copy):
    """What of the submitted notebook the student's process can read: the judge's copy, and any file
    beside or below its package holding the marker."""
    import os
    import vitcourse

    mark = "MARK" + "ER-saved-output"
    found = []
    try:
        with open(judge_copy, "rb") as fh:
            fh.read()
        found.append(judge_copy)
    except OSError:
        pass
    root = os.path.dirname(os.path.dirname(os.path.abspath(vitcourse.__file__)))
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                with open(os.path.join(folder, name), "rb") as fh:
                    if mark.encode() in fh.read():
                        found.append(os.path.join(folder, name))
            except OSError:
                pass
    return found
'''


def report_notebook(path, mark: str = MARK) -> bytes:
    """The student notebook with one saved output (what running a cell leaves behind), written to ``path``."""
    nb = nbformat.read(WEEK.student_notebook, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    first.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"{mark}\n")]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path.read_bytes()


def suite(tmp_path, task: str, sandbox: bool = False):
    tests = tmp_path / "hidden"
    tests.mkdir()
    text = JUDGE_TESTS + (SANDBOX_TEST if sandbox else "")
    (tests / "test_notebook.py").write_text(text.format(task=task, mark=MARK))
    if sandbox:
        (tests / "probes.py").write_text(PROBES)
    return tests


# ---------------------------------------------------------------- vitgrade grade: the snapshot
def test_the_grade_path_takes_the_notebook_as_submitted(tmp_path, monkeypatch):
    folder = submissions.make(tmp_path / "plain", "solution")
    data = report_notebook(folder / WEEK.notebook_name)
    assert grade.snapshot(folder, 8).notebook == data
    assert grade.snapshot(folder, 1).notebook is None, "a week that does not grade it does not carry it"
    assert grade.snapshot(folder).notebook is None

    nested = submissions.make(tmp_path / "nested", "solution")
    data = report_notebook(nested / "weeks" / WEEK.id / WEEK.notebook_name)
    assert grade.snapshot(nested, 8).notebook == data

    renamed = submissions.make(tmp_path / "renamed", "solution")
    (renamed / "Untitled.ipynb").write_text(json.dumps(nbformat.v4.new_notebook()))
    data = report_notebook(renamed / "report (1).ipynb")
    assert grade.snapshot(renamed, 8).notebook == data, "the renamed notebook is the one with the grade ids"

    none = submissions.make(tmp_path / "none", "solution")
    snap = grade.snapshot(none, 8)
    assert snap.notebook is None and snap.notebook_why == f"no notebook {WEEK.notebook_name} in your submission"

    linked = submissions.make(tmp_path / "linked", "solution")
    (linked / WEEK.notebook_name).symlink_to(folder / WEEK.notebook_name)
    snap = grade.snapshot(linked, 8)
    assert snap.notebook is None and "is a link, not a file" in snap.notebook_why

    fifo = submissions.make(tmp_path / "fifo", "solution")
    os.mkfifo(fifo / WEEK.notebook_name)
    snap = grade.snapshot(fifo, 8)  # a FIFO must not block the grader
    assert snap.notebook is None and "not a regular file" in snap.notebook_why

    monkeypatch.setenv("VITGRADE_NOTEBOOK_MB", "0.01")
    snap = grade.snapshot(folder, 8)
    assert snap.notebook is None and "(the limit is 0.01 MB)" in snap.notebook_why


def test_the_judge_reads_it_and_the_student_process_never_sees_it(tmp_path):
    folder = submissions.make(tmp_path / "student", "solution")
    report_notebook(folder / WEEK.notebook_name)
    cases = ((None, "no notebook 08_archaeology.ipynb in your submission",
              "no notebook 08_archaeology.ipynb in your submission (this test reads the notebook you submit, with its "
              "saved outputs)"),
             (b'{"cells": [', "", "your notebook could not be read: it is not valid JSON"),
             (None, "", "no notebook came with this submission"))
    with judge.new_zygote(1) as zygote:  # Week 1's small sandbox; the snapshot carries the notebook
        result = judge.run(1, grade.snapshot(folder, 8), "hidden", tests_dir=suite(tmp_path, "1.1", sandbox=True),
                           zygote=zygote.address)
        assert result.status == "ok", result.error
        assert {t.name: t.outcome for t in result.tests} == {"test_the_judge_reads_the_saved_outputs": "passed",
                                                             "test_the_student_process_never_sees_it": "passed"}, \
            [(t.name, t.message) for t in result.tests]
        for k, (notebook, why, said) in enumerate(cases):
            snap = integrity.Snapshot.take(folder / weeks.PACKAGE, folder)
            snap.notebook, snap.notebook_why = notebook, why
            (tmp_path / f"case{k}").mkdir()
            result = judge.run(1, snap, "hidden", tests_dir=suite(tmp_path / f"case{k}", "1.1"), zygote=zygote.address)
            assert result.tests[0].outcome == "failed" and said in result.tests[0].message, result.tests[0].message


# ---------------------------------------------------------------- nbgrader: before sanitizing clears the outputs
@pytest.mark.slow
def test_the_nbgrader_path_carries_the_notebook_with_its_outputs(tmp_path, monkeypatch):
    from vitgrade.autograde import pipeline as nbp

    course = tmp_path / "course"
    course.mkdir()
    shutil.copy2(weeks.GRADING / "nbgrader_config.py", course / "nbgrader_config.py")
    source = nbp.write_source(8, course)
    shutil.rmtree(source / "hidden_tests")
    suite(tmp_path, "8.3").rename(source / "hidden_tests")  # only this test: the package plays no part
    nbp.generate_release(8, course)
    with_outputs = nbp.make_submission(8, "with-outputs", "solution", course=course)
    report_notebook(with_outputs / WEEK.notebook_name)
    broken = nbp.make_submission(8, "not-json", "solution", course=course)
    (broken / WEEK.notebook_name).write_text('{"cells": [')
    monkeypatch.setenv("VITGRADE_EXECUTE", "none")
    report = nbp.autograde_checked(8, ["with-outputs", "not-json"], 1, course, export_rows=False)
    verdicts = {s: run.verdict for s, run in report.runs.items()}
    assert all(v and v["status"] == "ok" for v in verdicts.values()), report.summary()
    assert [t["outcome"] for t in verdicts["with-outputs"]["tests"]] == ["passed"], verdicts["with-outputs"]["tests"]
    failed = verdicts["not-json"]["tests"][0]
    assert failed["outcome"] == "failed" and "could not be read (it is not valid JSON" in failed["message"], failed
    autograded = nbformat.read(course / "autograded" / "with-outputs" / WEEK.assignment / WEEK.notebook_name, 4)
    assert MARK not in json.dumps(autograded), "nbgrader cleared the outputs: the judge had the submitted copy"
