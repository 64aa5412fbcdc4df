"""A student's edits to the notebook never cost a correct package its grade (issue 16).

The repair (:mod:`vitgrade.autograde.repair`) is tested directly on notebooks, for every
``*.notebook`` zoo entry of Weeks 1 and 2 (fast); one nbgrader batch then grades four of them end
to end, one per mechanism (repair inside nbgrader: a deleted and a pasted autograder cell; an
unreadable file: invalid JSON; the orchestrator's staging: no notebook), with
``VITGRADE_EXECUTE=none`` because the kernel plays no part in these cases.

CI cost, measured on the shared 2-core machine (load average 4-5 from other jobs): the whole file
49-57 s wall, 30 s CPU (user + sys); the unit tests alone 8 s CPU, the nbgrader batch (build,
4 students, export, feedback) 35 s CPU. The full zoo of notebook entries through both paths (11 per
week, the notebooks re-run) is ``vitgrade zoo --week N NAME...``: Week 1 took 78 s (vitgrade) and
293 s (nbgrader), Week 2 41 s and 408 s, under the same load.
"""

import copy
import csv
import json
import shutil

import nbformat
import pytest
from nbgrader.nbgraderformat import MetadataValidator

from vitgrade import weeks
from vitgrade.autograde import pipeline as nbp
from vitgrade.autograde import repair
from vitgrade.build.generate import task_points
from vitgrade.judging import grade
from vitgrade.selfcheck import zoo

ENTRIES = [(w, e) for w in (1, 2) for e in zoo.load_notebooks(w)]
IDS = [f"{weeks.get(w).id}-{e.name}" for w, e in ENTRIES]
E2E = ["deleted_graded_cell", "duplicated_graded_cell", "invalid_json_notebook", "missing_notebook"]


def _release(week: int) -> nbformat.NotebookNode:
    return nbformat.read(weeks.get(week).student_notebook, as_version=4)


def _needed(nb) -> list[tuple[str, str, dict, str]]:
    """(grade id, cell type, nbgrader metadata, source of a locked cell) of every graded/locked cell."""
    out = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader")
        if meta and (meta.get("grade") or meta.get("locked")):
            out.append((meta["grade_id"], cell.cell_type, meta, cell.source if not meta.get("solution") else ""))
    return out


def test_every_notebook_entry_covers_its_week_and_argues_its_score():
    assert {w for w, _ in ENTRIES} == {1, 2}
    names = {w: {e.name for v, e in ENTRIES if v == w} for w in (1, 2)}
    for w in (1, 2):
        assert not names[w] & {e.name for e in zoo.load(w, bystanders=False)}, "notebook and mutant names differ"
    for w, entry in ENTRIES:
        # An entry beside the untouched stub (# package: stub) measures the notebook's cost, not the package.
        full = {t: 0 for t in task_points(w)} if entry.kind == "stub" else task_points(w)
        assert entry.expect == full, f"{entry.name}: a notebook never changes its package's marks"
        assert "Honest part" in entry.description and entry.report["nbgrader"], entry.name
    kinds = {e.edit[0] for _, e in ENTRIES}
    assert {"delete", "duplicate", "split", "markdown", "rename", "remove", "invalid_json", "huge_output",
            "tamper"} <= kinds, "the issue's list of notebook edits"


@pytest.mark.parametrize("week,entry", ENTRIES, ids=IDS)
def test_repair_puts_every_graded_cell_back_once_and_keeps_the_students_text(week, entry, tmp_path):
    """What nbgrader gets: each graded/locked cell once, in the released order, with the released
    type, metadata and (locked) text; valid nbgrader metadata; the report line; the student's own
    text still there. The grade path reports its own line (or none) from the same checks."""
    info, release = weeks.get(week), _release(week)
    folder = entry.make(tmp_path / entry.name, week)
    edited = nbformat.read(folder / info.notebook_name, 4) if entry.edit[0] in ("duplicate", "split", "merge") else None
    located = repair.locate(folder, info.notebook_name, release)
    nb, notes = repair.load(located.path or located.expected, release, info.notebook_name)
    notes = located.notes + notes
    assert _needed(nb) == _needed(release)
    MetadataValidator().validate_nb(nb)
    nbformat.validate(nb)
    assert not zoo.check_notebook_report(entry.report["nbgrader"], notes), notes
    if edited is not None:  # pasted, split and merged text survives in some cell
        text = "\n".join(c.source for c in nb.cells)
        for cell in edited.cells:
            assert all(line in text for line in cell.source.splitlines()), cell.source[:80]
    assert not zoo.check_notebook_report(entry.report["vitgrade"], repair.inspect_submission(info, folder))


@pytest.mark.parametrize("week", [1, 2])
def test_an_untouched_notebook_is_not_repaired(week, tmp_path):
    release = _release(week)
    answered = nbp.answered_notebook(weeks.get(week), weeks.get(week).student_notebook)
    path = tmp_path / "nb.ipynb"
    nbformat.write(answered, path)
    nb, notes = repair.load(path, release)
    assert notes == [] and _needed(nb) == _needed(release)
    assert repair.annotate(nb, notes).cells[0].source == answered.cells[0].source, "no note cell without notes"


def test_cells_the_release_does_not_have_and_forged_grader_metadata_are_dropped():
    release = _release(1)
    nb = copy.deepcopy(release)
    nb.metadata["vitgrade"] = {"notebook": []}  # a student pretending nothing needs a look
    mine = nbformat.v4.new_code_cell("x = 1", metadata={"nbgrader": {
        "grade": True, "grade_id": "my_extra_points", "locked": True, "points": 100, "schema_version": 3,
        "solution": False}})
    nb.cells.append(mine)
    notes = repair.repair(nb, release)
    assert "nbgrader" not in mine.metadata and mine.source == "x = 1"
    assert "vitgrade" not in nb.metadata and any("my_extra_points" in n for n in notes)


def test_a_cell_that_lost_its_metadata_gets_it_back_in_place():
    release = _release(2)
    nb = copy.deepcopy(release)
    cell = next(c for c in nb.cells if c.get("id") == "task_2_4")
    del cell.metadata["nbgrader"]
    notes = repair.repair(nb, release)
    assert len(nb.cells) == len(release.cells) and cell.metadata["nbgrader"]["grade_id"] == "task_2_4"
    assert notes == ["The autograder cell for Task 2.4 (task_2_4) had lost its nbgrader metadata; it was put back."]


def test_two_graded_cells_merged_are_separated_and_an_old_format_notebook_gets_ids():
    release = _release(1)
    nb = copy.deepcopy(release)
    i = next(k for k, c in enumerate(nb.cells) if c.get("id") == "task_1_1")
    nb.cells[i].source += "\n\n" + nb.cells[i + 1].source  # task_1_1 merged with the cell below
    del nb.cells[i + 1]
    nb.cells.insert(i + 1, copy.deepcopy(nb.cells[i + 1]))  # and some cell pasted twice
    for c in nb.cells:
        c.pop("id", None)
    nb.nbformat_minor = 4
    repair.repair(nb, release)
    assert _needed(nb) == _needed(release)
    nbformat.validate(nb)
    assert len({c.id for c in nb.cells}) == len(nb.cells)


@pytest.mark.parametrize("content,why", [(b"[]", "not a Jupyter notebook"), (b'{"cells": 3}', "not a Jupyter"),
                                         (b"\xff\xfe{", "not UTF-8"), (b'{"cells": [', "not valid JSON")])
def test_a_file_that_is_not_a_notebook_becomes_the_release_notebook(content, why, tmp_path):
    release = _release(1)
    path = tmp_path / "01_attention.ipynb"
    path.write_bytes(content)
    nb, notes = repair.load(path, release)
    assert len(notes) == 1 and why in notes[0] and "release notebook" in notes[0]
    assert _needed(nb) == _needed(release)


def test_a_linked_notebook_is_not_followed(tmp_path):
    """The grader reads with more rights than the student: a link could point at the gradebook."""
    secret = tmp_path / "gradebook.json"
    secret.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5, "x": "s3cr3t"}))
    (tmp_path / "01_attention.ipynb").symlink_to(secret)
    nb, notes = repair.load(tmp_path / "01_attention.ipynb", _release(1))
    assert "a link, not a file" in notes[0] and "s3cr3t" not in json.dumps(nb)


def test_the_renamed_notebook_is_the_one_with_the_grade_ids(tmp_path):
    release = _release(1)
    (tmp_path / "Untitled.ipynb").write_text(json.dumps(nbformat.v4.new_notebook()))
    nbformat.write(release, tmp_path / "attention copy.ipynb")
    located = repair.locate(tmp_path, "01_attention.ipynb", release)
    assert located.moved and located.path.name == "attention copy.ipynb"
    assert "Untitled.ipynb" in located.notes[0] and "not graded" in located.notes[0]
    (tmp_path / "attention copy.ipynb").unlink()
    located = repair.locate(tmp_path, "01_attention.ipynb", release)
    assert located.path is None and "missing" in located.notes[0], "a scratch notebook is not the notebook"


def test_the_grade_path_reports_notebooks_in_its_gradebook(tmp_path):
    entries = {e.name: e for e in zoo.load_notebooks(1, ["duplicated_graded_cell", "missing_notebook"])}
    paths = [entries[name].make(tmp_path / name, 1) for name in sorted(entries)]
    reports = grade.notebook_reports(1, paths)
    assert "(task_1_3) appeared 2 times" in reports["duplicated_graded_cell"][0]
    assert reports["missing_notebook"] == []
    assert grade.notebook_reports(1, [tmp_path / "missing_notebook"]) == {"missing_notebook": []}


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    course = tmp_path_factory.mktemp("repair") / "course"
    entries = {e.name: e for e in zoo.load_notebooks(1, E2E)}
    zoo.nbgrader_course(1, list(entries.items()), course)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VITGRADE_EXECUTE", "none")
        report = nbp.autograde_checked(1, E2E, 2, course)
    return course, entries, report


@pytest.mark.slow
def test_every_edited_notebook_keeps_full_marks_through_nbgrader(batch):
    course, entries, report = batch
    rows = {r["student_id"]: r for r in nbp.export(course)}
    for name in E2E:
        run = report.runs[name]
        assert run.returncode == 0, run.output[-2000:]
        assert float(rows[name]["score"]) == float(rows[name]["max_score"]) == sum(task_points(1).values()), name
        assert not zoo.check_notebook_report(entries[name].report["nbgrader"], report.notebooks[name])
    assert not report.tampering and not report.problems, "submitted/ unchanged, gradebook = verdicts"
    assert not report.ok, "repairs need a look"
    with open(course / ".vitgrade" / "reports" / "01_attention.csv") as fh:
        lines = {line["student"]: line for line in csv.DictReader(fh)}
    assert set(lines) == set(E2E) and all(lines[n]["notebook"] and lines[n]["status"] == "ok" for n in E2E)
    assert not (course / nbp.STAGED).exists(), "the staged copy is removed after the batch"
    nb = nbformat.read(course / "autograded" / "duplicated_graded_cell" / "01_attention" / "01_attention.ipynb", 4)
    assert [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells].count("task_1_3") == 1
    assert nb.cells[0].source.startswith(repair.HEADER)


@pytest.mark.slow
def test_the_repairs_reach_the_students_feedback(batch):
    course, _, report = batch
    run = nbp.nbgrader("generate_feedback", "01_attention", "--force", course=course)
    assert run.returncode == 0, run.output[-2000:]
    for name in E2E:
        page = (course / "feedback" / name / "01_attention" / "01_attention.html").read_text()
        assert "Notes from the grader about your notebook" in page
        assert report.notebooks[name][0].split(";")[0].split("(")[0] in page
    shutil.rmtree(course / "feedback")


# ---------------------------------------------------------------------------- bounded input (issue 20)
def _pasted(release: nbformat.NotebookNode, copies: int, split: bool) -> nbformat.NotebookNode:
    """The release with the Task 1.3 autograder cell pasted ``copies`` times below itself, or (``split``)
    cut into ``copies + 1`` pieces, each keeping the cell's metadata."""
    nb = copy.deepcopy(release)
    i = next(k for k, c in enumerate(nb.cells) if repair._grade_id(c) == "task_1_3")
    cell, text = nb.cells[i], nb.cells[i].source
    pieces = []
    for k in range(copies):
        piece = copy.deepcopy(cell)
        piece.id = f"piece{k}"
        if split:
            piece.source = text[k * len(text) // (copies + 1):(k + 1) * len(text) // (copies + 1)]
        pieces.append(piece)
    if split:
        cell.source = text[copies * len(text) // (copies + 1):]
        nb.cells[i:i] = pieces
    else:
        nb.cells[i + 1:i + 1] = pieces
    return nb


@pytest.mark.parametrize("split", [False, True], ids=["pasted", "split"])
def test_repair_is_linear_in_the_notebooks_size(split):
    """4x the cells costs about 4x the time (a quadratic repair: 16x). The repair's own CPU time, best of
    three runs each, with Python's cyclic garbage collector paused while it runs: measured in wall time,
    with full collections (which grow with the number of live objects) free to land in either run, a
    linear repair once measured 8.2x on a busy machine (0.014 s against 0.112 s)."""
    import gc
    import time

    release = _release(1)

    def seconds(copies: int) -> float:
        best = float("inf")
        for _ in range(3):
            nb = _pasted(release, copies, split)
            gc.collect()
            gc.disable()
            try:
                start = time.process_time()  # this process's CPU: other jobs on the machine do not count
                notes = repair.repair(nb, release)
                best = min(best, time.process_time() - start)
            finally:
                gc.enable()
        assert notes and ("joined back" in notes[0] if split else "copies are kept" in notes[0]), notes
        return best

    small, large = seconds(2500), seconds(10_000)
    assert large / small < 8, f"2,500 copies: {small:.3f} s, 10,000: {large:.3f} s"


def test_a_notebook_beyond_the_cell_or_time_limit_is_not_read(tmp_path, monkeypatch):
    release = _release(1)
    path = tmp_path / weeks.get(1).notebook_name
    nbformat.write(_pasted(release, 300, split=False), path)
    monkeypatch.setenv("VITGRADE_NOTEBOOK_CELLS", "200")
    nb, notes = repair.load(path, release)
    assert len(nb.cells) == len(release.cells) and len(notes) == 1
    assert f"has {len(release.cells) + 300} cells (the limit is 200); it was not read" in notes[0]
    monkeypatch.setenv("VITGRADE_NOTEBOOK_CELLS", "5000")
    monkeypatch.setenv("VITGRADE_NOTEBOOK_SECONDS", "0")
    nb, notes = repair.load(path, release)
    assert len(nb.cells) == len(release.cells)
    assert notes == [f"Your notebook {path.name} took longer than 0 s to read and check (the limit); it was not "
                     "read. The notebook below is the release notebook; your package was graded as usual."]
    monkeypatch.setenv("VITGRADE_NOTEBOOK_SECONDS", "30")
    nb, notes = repair.load(path, release)
    assert len(nb.cells) == len(release.cells) + 300 and "appeared 301 times" in notes[0]
