"""One source of truth: generated files match their sources, and the generator is right."""

import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vitgrade import weeks
from vitgrade.build import generate


def test_generated_files_are_in_sync():
    stale = generate.stale_files()
    assert not stale, f"stale generated files (run `vitgrade sync`): {stale}"


def test_every_solution_module_with_exercises_has_a_week():
    listed = {m for w in weeks.WEEKS.values() for m in w.modules}
    for path in weeks.SOLUTION_PACKAGE.glob("*.py"):
        if generate.has_solution_region(path.read_text()):
            assert path.name in listed, f"{path.name} has exercises but no week lists it"


def test_stub_replaces_each_region_with_a_named_error():
    source = textwrap.dedent('''
        class Net:
            def forward(self, x):
                """Doc."""
                ### BEGIN SOLUTION [Week 9 · Task 9.1]
                y = x * 2
                return y
                ### END SOLUTION
    ''')
    stub = generate.stub_module(source, "src/vitcourse/net.py")
    assert "x * 2" not in stub
    assert "raise NotImplementedError('Week 9 · Task 9.1: implement Net.forward in src/vitcourse/net.py')" in stub
    assert '"""Doc."""' in stub
    compile(stub, "stub", "exec")


@pytest.mark.parametrize("bad", [
    "    ### BEGIN SOLUTION\n    x = 1\n",  # never closed
    "    ### END SOLUTION\n",  # never opened
    "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n",  # nested
])
def test_malformed_markers_are_errors(bad):
    with pytest.raises(generate.MarkerError):
        generate.stub_module(bad, "x.py")


@given(st.lists(st.text(alphabet="abcxyz =+1()", min_size=1, max_size=20), min_size=1, max_size=8),
       st.integers(min_value=0, max_value=3))
def test_stub_never_contains_solution_lines(body_lines, depth):
    indent = "    " * (depth + 1)
    body = "".join(f"{indent}secret_{i} = {line!r}\n" for i, line in enumerate(body_lines))
    source = f"def f():\n{indent}### BEGIN SOLUTION\n{body}{indent}### END SOLUTION\n"
    stub = generate.stub_module(source, "m.py")
    assert "secret_" not in stub
    assert stub.count("raise NotImplementedError") == 1


def test_student_notebooks_hide_solutions_and_hidden_tests():
    for week in weeks.WEEKS.values():
        nb = generate.build_notebook(week, student=True)
        text = "\n".join(c.source for c in nb.cells)
        assert "### BEGIN SOLUTION" not in text and "### BEGIN HIDDEN TESTS" not in text
        assert "grade_task(" not in text, "the hidden-test call must not be in the student notebook"
        # Autograded cells are the tasks' (the hidden suite scores them); manual ones are answer cells.
        graded = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")
                  and not c.metadata["nbgrader"].get("solution")]
        points = generate.task_points(week.number)
        assert {c.metadata["nbgrader"]["grade_id"] for c in graded} == {
            "task_" + t.replace(".", "_") for t in points}
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade") and meta.get("solution"):  # manual grading: an answer cell with points
                assert not meta["grade_id"].startswith("task_") and meta.get("points", 0) > 0, meta
                assert cell.cell_type == "markdown" and cell.source == "YOUR ANSWER HERE", meta["grade_id"]
        for cell in graded:
            task = cell.metadata["nbgrader"]["grade_id"].removeprefix("task_").replace("_", ".")
            assert cell.metadata["nbgrader"]["points"] == points[task]


def test_registry_tasks_match_the_hidden_suite():
    for week in weeks.WEEKS.values():
        assert set(generate.task_points(week.number)) == {t.id for t in week.tasks}
