"""Every week's reference notebook runs top to bottom at SMOKE scale (CPU, offline).

A week that grades its notebook (``Week.notebook_tasks``: Week 8) is left to its verification
(tests/course/test_verify.py), which executes the reference notebook with the same checks (no cell
fails, the run prints its scale) and then grades it: running it here as well cost 52 s a second time.
"""

import nbformat
import pytest

from vitgrade import weeks
from vitgrade.build import notebooks


@pytest.mark.slow
@pytest.mark.parametrize("number", [n for n in sorted(weeks.WEEKS) if not weeks.get(n).notebook_tasks])
def test_solution_notebook_runs(number, monkeypatch):
    monkeypatch.setenv("VIT_SCALE", "smoke")
    nb, seconds, errors = notebooks.execute(number, timeout=600)
    print(f"week {number} notebook: {seconds:.1f} s")
    assert not errors, errors
    assert not notebooks.scale_missing(nb), "each notebook prints which scale it runs at"


def test_a_notebook_that_does_not_say_its_scale_is_a_problem(monkeypatch):
    monkeypatch.setenv("VIT_SCALE", "smoke")
    said = nbformat.v4.new_code_cell("print(scale_banner())", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="Scale: SMOKE (CPU, minutes)\n")])
    silent = nbformat.v4.new_code_cell("print('hello')", outputs=[nbformat.v4.new_output("stream", text="hello\n")])
    assert notebooks.scale_missing(nbformat.v4.new_notebook(cells=[silent, said])) == ""
    assert notebooks.scale_missing(nbformat.v4.new_notebook(cells=[silent])) == "does not print 'Scale: SMOKE'"
    monkeypatch.setenv("VIT_SCALE", "full")  # a SMOKE banner in a FULL run is the wrong scale
    assert notebooks.scale_missing(nbformat.v4.new_notebook(cells=[said]))
