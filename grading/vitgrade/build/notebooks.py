"""Execute the reference notebooks (``vitgrade notebooks``), at the scale ``VIT_SCALE`` sets.

The instructor version of each notebook runs top to bottom with the reference package first on
``PYTHONPATH``. Its graded cells are left empty here (they need the nbgrader build, where the
pipeline runs them). CI runs this at SMOKE scale; the GPU workflow at FULL scale.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import nbclient
import nbformat

from vitgrade import weeks
from vitgrade.build import generate


def execute(number: int, out_dir: Path | None = None, timeout: int = 3600, student: bool = False
            ) -> tuple[nbformat.NotebookNode, float, list[str]]:
    """Run week ``number``'s reference notebook on the reference package (or, with ``student``,
    the generated student notebook on the stubs, as a student who runs everything before writing
    any code); return it, the seconds taken and any errors."""
    week = weeks.get(number)
    if student:
        nb, package = nbformat.read(week.student_notebook, as_version=4), weeks.STUDENT_PACKAGE.parent
    else:
        nb, package = generate.build_notebook(week, student=False), weeks.SOLUTIONS
        for cell in nb.cells:
            cell.source = generate.strip_regions(cell.source, generate.BEGIN_HIDDEN, generate.END_HIDDEN, None)
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(package), old]))
    # The reference notebook reads the course's own runs of its trainings (Week 3: made by this same
    # reference code, shipped in data/runs/, checked by tests/course/test_course_runs.py) instead of
    # training them again; VIT_COURSE_RUNS=0 trains. The student notebook never reads them.
    old_runs = os.environ.get("VIT_COURSE_RUNS")
    if not student and old_runs is None:
        os.environ["VIT_COURSE_RUNS"] = "1"
    old_backend = os.environ.pop("MPLBACKEND", None)  # Agg would swallow the kernel's figures
    start = time.monotonic()
    try:
        nbclient.NotebookClient(
            nb, timeout=timeout, kernel_name="python3", allow_errors=True,
            resources={"metadata": {"path": str(week.folder)}},
        ).execute()
    finally:
        if old_runs is None:
            os.environ.pop("VIT_COURSE_RUNS", None)
        if old_backend is not None:
            os.environ["MPLBACKEND"] = old_backend
        if old is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = old
    seconds = time.monotonic() - start
    errors = [f"{c.source.splitlines()[0][:70] if c.source else ''}: {o.ename}: {o.evalue}"
              for c in nb.cells if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"]
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out_dir / week.notebook_name)
    return nb, seconds, errors


def scale_missing(nb: nbformat.NotebookNode) -> str:
    """"" when an executed notebook printed ``Scale: <VIT_SCALE>`` (every notebook says which scale it ran
    at), else the problem, in one line."""
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    scale = os.environ.get("VIT_SCALE", "smoke").upper()
    return "" if f"Scale: {scale}" in printed else f"does not print 'Scale: {scale}'"
