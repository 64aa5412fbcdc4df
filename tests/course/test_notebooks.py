"""Every week's reference notebook runs top to bottom at SMOKE scale (CPU, offline)."""

import pytest

from vitgrade import weeks
from vitgrade.build import notebooks


@pytest.mark.slow
@pytest.mark.parametrize("number", sorted(weeks.WEEKS))
def test_solution_notebook_runs(number, monkeypatch):
    monkeypatch.setenv("VIT_SCALE", "smoke")
    nb, seconds, errors = notebooks.execute(number, timeout=600)
    print(f"week {number} notebook: {seconds:.1f} s")
    assert not errors, errors
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "Scale: SMOKE" in printed, "each notebook prints which scale it runs at"
