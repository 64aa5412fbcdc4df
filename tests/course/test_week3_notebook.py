"""Week 3's notebook: a task's own check does not wait for other tasks.

A student who has finished Task 3.5 (the loop and the checkpoints) but not Tasks 3.1-3.3 must see the
3.5 checks run: they may use only Task 3.5's functions and things the course gives. The student
notebook's preamble and its Task 3.5 section run here on a package where ``training.py`` is the
reference and every other Week 3 module is the untouched stub (Weeks 1-2 are the reference, as a
student who finished them has them).
"""

import shutil

import nbclient
import nbformat

from vitgrade import weeks

SECTION = "## 5. Task 3.5"


def test_task_3_5_checks_need_only_task_3_5(tmp_path, monkeypatch):
    week = weeks.get(3)
    package = tmp_path / "pkg" / weeks.PACKAGE
    shutil.copytree(weeks.STUDENT_PACKAGE, package)
    for module in (*week.support_modules, "training.py"):
        shutil.copy2(weeks.SOLUTION_PACKAGE / module, package / module)
    nb = nbformat.read(week.student_notebook, as_version=4)
    code, inside = [], False
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.startswith("## "):
            inside = cell.source.startswith(SECTION)
        elif cell.cell_type == "code" and (inside or not code) and "grade_task" not in cell.source:
            code.append(cell)  # the first code cell (imports, data), then the section's checks
    assert len(code) >= 3, "the Task 3.5 section has its checks"
    nb.cells = code
    monkeypatch.setenv("PYTHONPATH", str(package.parent))
    monkeypatch.setenv("VIT_SCALE", "smoke")
    monkeypatch.setenv("VIT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [f"{c.source.splitlines()[0][:60]!r}: {o.ename}: {o.evalue[:200]}"
              for c in nb.cells for o in c.outputs if o.output_type == "error"]
    assert not errors, "with only Task 3.5 done, its checks stop on another task:\n" + "\n".join(errors)
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.outputs)
    assert "100% training accuracy" in printed and "resume" in printed, printed[-2000:]
