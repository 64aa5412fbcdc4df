"""nbgrader end to end: build Week 1, autograde three submissions, export.

The reference earns full marks, the untouched release earns zero, a realistic bug earns
something in between; nbgrader exits 0 for all three; hidden tests never reach release/ or
feedback/.
"""

import shutil

import pytest

from vitgrade import weeks
from vitgrade.autograde import pipeline as nbp

pytestmark = pytest.mark.slow  # builds and autogrades a course



@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = tmp_path_factory.mktemp("course")
    shutil.copy2(weeks.GRADING / "nbgrader_config.py", course / "nbgrader_config.py")
    return course


@pytest.fixture(scope="module")
def graded(course):
    rows, runs = nbp.demo(1, jobs=2, course=course)
    return {r["student_id"]: r for r in rows}, runs


def test_release_has_no_hidden_tests_or_solutions(graded, course):
    release = course / "release" / "01_attention"
    assert (release / "vitcourse" / "attention.py").exists()
    assert not (release / "hidden_tests").exists()
    text = (release / "01_attention.ipynb").read_text()
    assert "BEGIN SOLUTION" not in text and "grade_task" not in text
    assert "raise NotImplementedError" in (release / "vitcourse" / "attention.py").read_text()


def test_scores_full_zero_partial(graded):
    rows, runs = graded
    for student, run in runs.items():
        assert run.returncode == 0, f"nbgrader autograde failed for {student}:\n{run.output[-2000:]}"
    reference, untouched, buggy = (float(rows[s]["score"]) for s in nbp.sample_submissions(1))
    top = float(rows[next(iter(nbp.sample_submissions(1)))]["max_score"])
    assert top > 0 and reference == top
    assert untouched == 0
    assert 0 < buggy < top


def test_feedback_has_no_hidden_test_code(graded, course):
    run = nbp.nbgrader("generate_feedback", "01_attention", "--force", course=course)
    assert run.returncode == 0, run.output[-2000:]
    feedback = list((course / "feedback").rglob("*"))
    assert any(p.suffix == ".html" for p in feedback)
    assert not any(p.name == "hidden_tests" for p in feedback)
    for page in (p for p in feedback if p.suffix == ".html"):
        html = page.read_text()
        assert "def test_" not in html and "assert_close(" not in html
        assert "test_sdpa_matches_torch" in html, "feedback names the tests the student failed or passed"


def test_score_only_mode_gives_the_same_grades_without_a_kernel(graded, course, monkeypatch):
    """VITGRADE_EXECUTE=none (the fast mode for large classes) starts no kernel for the
    student's notebook but records exactly the same points; the notebook says it was not re-run."""
    import json

    import nbformat

    rows, _ = graded
    monkeypatch.setenv("VITGRADE_EXECUTE", "none")
    students = list(nbp.sample_submissions(1))
    report = nbp.autograde_checked(1, students, 2, course)
    assert report.ok, (report.problems, report.tampering)
    again = {r["student_id"]: r for r in nbp.export(course)}
    for student in students:
        assert again[student]["score"] == rows[student]["score"], student
        verdict = json.loads((course / ".vitgrade" / "verdicts" / "01_attention" / f"{student}.json").read_text())
        assert verdict["kernel"].startswith("not run")
        nb = nbformat.read(course / "autograded" / student / "01_attention" / "01_attention.ipynb", 4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        graded_cells = [c for c in code if c.metadata.get("nbgrader", {}).get("grade")]
        assert graded_cells and all(c.outputs for c in graded_cells)
        assert "not re-run at grading" in code[0].outputs[0]["text"]
        others = [c for c in code[1:] if c not in graded_cells]
        assert others and not any(c.outputs for c in others), "no output may survive from the submission"


def test_the_judge_runs_while_the_kernel_re_runs_the_notebook(graded):
    """VITGRADE_OVERLAP (default 1): the hidden suite starts on the snapshot before the kernel does, so
    after the reference's kernel has run the whole notebook (three trainings of the reverse task) its
    verdict is ready or nearly: what the judge added after the kernel (``judge_wait``) is under half the
    suite's own time. Graded one after the other (``VITGRADE_OVERLAP=0``), the wait is the whole judge,
    start-up included: 1.86 s for a 1.82 s suite; alongside, 0.0 s for a 4.0 s suite."""
    _, runs = graded
    verdict = runs[next(iter(nbp.sample_submissions(1)))].verdict  # the reference's, from the fixture's run
    assert not verdict["kernel"], verdict["kernel"]  # the notebook was re-run, without a failure
    assert verdict["seconds"] > 0 and verdict["judge_wait"] < verdict["seconds"] / 2, \
        (verdict["judge_wait"], verdict["seconds"])
