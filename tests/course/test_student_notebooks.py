"""An unfinished task fails in its own cells, in its own words.

Each week's student notebook (``weeks/<id>/<id>.ipynb``, as generated) runs top to bottom on the
untouched stubs (``src/vitcourse/``, as generated), errors allowed: what a student sees who runs
everything before writing any code. Every error must be the ``NotImplementedError`` of a stub or
of an answer cell, naming a task of the section the cell is in or of an earlier one; never a
``NameError``, a shape mismatch or any other follow-on of an earlier failure. Every task of the
week is named at least once (but a task graded from the notebook's outputs: it has no stub). One
run per week (it counts against the week's time budget).
"""

import re

import pytest

from vitgrade import weeks
from vitgrade.build import notebooks

TASK = re.compile(r"Task (\d+)\.(\d+)")
STUB = re.compile(r"^Week \d+ · Task (\d+)\.(\d+): ")


@pytest.mark.slow
@pytest.mark.parametrize("number", sorted(weeks.WEEKS))
def test_unfinished_tasks_fail_in_their_own_words(number, monkeypatch):
    monkeypatch.setenv("VIT_SCALE", "smoke")
    week = weeks.get(number)
    nb, seconds, _ = notebooks.execute(number, timeout=300, student=True)
    print(f"week {number} student notebook on the stubs: {seconds:.1f} s")
    section, named, problems = None, set(), []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#") and (m := TASK.search(line)):
                    section = (int(m[1]), int(m[2]))
            continue
        for out in (o for o in cell.get("outputs", []) if o.output_type == "error"):
            where = f"cell {index} ({cell.source.splitlines()[0][:50]!r})"
            m = STUB.match(out.evalue)
            if out.ename != "NotImplementedError" or not m:
                problems.append(f"{where}: {out.ename}: {out.evalue[:120]} (not an unfinished task's own error)")
                continue
            task = (int(m[1]), int(m[2]))
            if section is None or task > section:
                problems.append(f"{where}: names Task {task[0]}.{task[1]}, but the cell is before that task's section")
            named.add(f"{task[0]}.{task[1]}")
    assert not problems, "\n".join(problems)
    coded = {t.id for t in week.tasks} - set(week.notebook_tasks)  # a task graded from the notebook has no stub
    assert named >= coded, f"tasks whose unfinished code no cell names: {sorted(coded - named)}"
