"""Every week's reference notebook runs top to bottom at SMOKE scale (CPU, offline).

A week that grades its notebook (``Week.notebook_tasks``: Week 8) is left to its verification
(tests/course/test_verify.py), which executes the reference notebook with the same checks (no cell
fails, the run prints its scale) and then grades it: running it here as well cost 52 s a second time.
"""

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
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "Scale: SMOKE" in printed, "each notebook prints which scale it runs at"
