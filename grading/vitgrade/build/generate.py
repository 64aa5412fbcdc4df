"""Generated files, from their one source each.

* ``src/vitcourse/*.py``      <- ``solutions/vitcourse/*.py``: every
  ``### BEGIN SOLUTION [label]`` ... ``### END SOLUTION`` region becomes one
  ``raise NotImplementedError("<label>: implement <Class.method> ...")``.
* ``weeks/<id>/<id>.ipynb``   <- ``solutions/notebooks/<id>.py`` (jupytext percent format with
  nbgrader metadata): solution regions become ``# YOUR CODE HERE`` stubs, hidden-test regions
  disappear, graded cells get their points from the hidden suite's ``task`` markers.
* the instructor's source notebook (``grading/source/<assignment>/``) from the same script,
  solutions and hidden tests kept (built on demand, not committed).
* ``environment.yml``         <- ``requirements.txt``.

``vitgrade sync`` writes them; ``vitgrade sync --check`` fails when any is stale.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat

from vitgrade import weeks

BEGIN = re.compile(r"^(?P<indent>\s*)### BEGIN SOLUTION(?:\s*\[(?P<label>[^\]]*)\])?\s*$")
END = re.compile(r"^\s*### END SOLUTION\s*$")
BEGIN_HIDDEN = re.compile(r"^\s*### BEGIN HIDDEN TESTS\s*$")
END_HIDDEN = re.compile(r"^\s*### END HIDDEN TESTS\s*$")
DEF = re.compile(r"^(?P<indent>\s*)(?:async\s+)?(?P<kind>def|class)\s+(?P<name>\w+)")


class MarkerError(ValueError):
    pass


# -- modules ------------------------------------------------------------------------------
def _qualname(lines: list[str], index: int, indent: int) -> str:
    """Class.method enclosing line ``index`` (scanning upwards by indentation)."""
    names: list[str] = []
    for line in reversed(lines[:index]):
        match = DEF.match(line)
        if match and len(match["indent"]) < indent:
            names.append(match["name"])
            indent = len(match["indent"])
            if indent == 0:
                break
    return ".".join(reversed(names)) or "<module>"


def stub_module(text: str, student_path: str) -> str:
    """The student stub of one solution module."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = BEGIN.match(lines[i])
        if not match:
            if END.match(lines[i]):
                raise MarkerError(f"{student_path}:{i + 1}: END SOLUTION without BEGIN")
            out.append(lines[i])
            i += 1
            continue
        indent = match["indent"]
        label = (match["label"] or "Exercise").strip()
        where = _qualname(lines, i, len(indent))
        j = i + 1
        while j < len(lines) and not END.match(lines[j]):
            if BEGIN.match(lines[j]):
                raise MarkerError(f"{student_path}:{j + 1}: nested BEGIN SOLUTION")
            j += 1
        if j == len(lines):
            raise MarkerError(f"{student_path}:{i + 1}: BEGIN SOLUTION without END")
        message = f"{label}: implement {where} in {student_path}"
        out.append(f"{indent}raise NotImplementedError({message!r})\n")
        i = j + 1
    return "".join(out)


def has_solution_region(text: str) -> bool:
    return any(BEGIN.match(line) for line in text.splitlines())


def strip_markers(text: str) -> str:
    """The reference answer: solution-marker lines removed, what they enclose kept."""
    return "".join(line for line in text.splitlines(keepends=True)
                   if not (BEGIN.match(line) or END.match(line)))


def expected_stubs() -> dict[Path, str]:
    files = {}
    for src in sorted(weeks.SOLUTION_PACKAGE.rglob("*.py")):
        rel = src.relative_to(weeks.SOLUTION_PACKAGE)
        student_rel = f"src/{weeks.PACKAGE}/{rel.as_posix()}"
        files[weeks.STUDENT_PACKAGE / rel] = stub_module(src.read_text(), student_rel)
    return files


# -- hidden-suite points --------------------------------------------------------------------
def task_points(week: int) -> dict[str, float]:
    """Points per task, read from the hidden suite's ``@pytest.mark.task(id, points=N)``."""
    totals: dict[str, float] = {}
    for path in sorted(weeks.get(week).suite_dir("hidden").glob("test_*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test"):
                continue
            for deco in node.decorator_list:
                if (isinstance(deco, ast.Call) and isinstance(deco.func, ast.Attribute)
                        and deco.func.attr == "task"):
                    task = ast.literal_eval(deco.args[0])
                    points = next((ast.literal_eval(k.value) for k in deco.keywords
                                   if k.arg == "points"), 1)
                    totals[task] = totals.get(task, 0) + points
    return totals


# -- notebooks ------------------------------------------------------------------------------
def strip_regions(source: str, begin: re.Pattern, end: re.Pattern, replacement: str | None
                   ) -> str:
    lines = source.splitlines()
    out: list[str] = []
    inside = False
    for line in lines:
        if begin.match(line):
            inside = True
            if replacement is not None:
                indent = re.match(r"\s*", line).group(0)
                out.extend(indent + r for r in replacement.splitlines())
            continue
        if inside and end.match(line):
            inside = False
            continue
        if not inside:
            out.append(line)
    if inside:
        raise MarkerError("unclosed region in notebook cell")
    return "\n".join(out)


def answer_stub(cell: nbformat.NotebookNode) -> str:
    """What replaces the solution region of a notebook answer cell. A region labelled like the
    package's (``### BEGIN SOLUTION [Week 1 · Task 1.3]``) raises an error that names its task
    and the function to write, so an unfinished answer fails in its own words."""
    if cell.cell_type != "code":
        return "YOUR ANSWER HERE"
    lines = cell.source.splitlines()
    label = next((m["label"].strip() for line in lines if (m := BEGIN.match(line)) and m["label"]), None)
    if label is None:
        return "# YOUR CODE HERE\nraise NotImplementedError()"
    name = next((m["name"] for line in lines if (m := DEF.match(line))), "this cell")
    return f"# YOUR CODE HERE\nraise NotImplementedError({f'{label}: write {name} in this notebook'!r})"


def read_notebook_source(week: weeks.Week) -> nbformat.NotebookNode:
    import jupytext

    nb = jupytext.read(week.notebook_source, fmt="py:percent")
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                       "name": "python3"},
        "language_info": {"name": "python"},
    }
    return nb


def build_notebook(week: weeks.Week, student: bool) -> nbformat.NotebookNode:
    """The student (``student=True``) or instructor notebook of ``week``."""
    nb = read_notebook_source(week)
    points = task_points(week.number)
    for index, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader")
        cell.id = meta["grade_id"] if meta else f"{week.id}-{index:03d}"
        cell.metadata = {"nbgrader": meta} if meta else {}  # NotebookNode copies meta
        meta = cell.metadata.get("nbgrader")
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        task = weeks.grade_id_task(meta["grade_id"]) if meta and meta.get("grade") else None
        if task is not None:
            if task not in points:
                raise MarkerError(f"{week.id}: graded cell {meta['grade_id']} has no tests")
            meta["points"] = points[task]
        if not student:
            continue
        if meta and meta.get("solution"):
            cell.source = strip_regions(cell.source, BEGIN, END, answer_stub(cell))
        cell.source = strip_regions(cell.source, BEGIN_HIDDEN, END_HIDDEN, None)
    missing = set(points) - {weeks.grade_id_task(c.metadata["nbgrader"]["grade_id"]) for c in nb.cells
                             if c.metadata.get("nbgrader", {}).get("grade")}
    if missing:
        raise MarkerError(f"{week.id}: no graded cell for task(s) {sorted(missing)}")
    return nb


def notebook_text(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def expected_notebooks() -> dict[Path, str]:
    return {w.student_notebook: notebook_text(build_notebook(w, student=True)) for w in weeks.WEEKS.values()}


# -- environment.yml ----------------------------------------------------------------------
def expected_environment() -> dict[Path, str]:
    pins, no_deps = [], []
    for line in (weeks.REPO / "requirements.txt").read_text().splitlines():
        pin, _, comment = line.partition("#")
        if pin.strip():
            (no_deps if comment.strip().startswith("no-deps") else pins).append(pin.strip())
    body = "\n".join(f"      - {pin}" for pin in pins)
    after = "".join(f"# then, in the environment: pip install --no-deps {pin}\n" for pin in no_deps)
    text = (
        "# Generated from requirements.txt by `vitgrade sync`; edit that file, not this one.\n" + after +
        "name: vit-course\nchannels:\n  - conda-forge\ndependencies:\n  - python=3.11\n"
        f"  - pip\n  - pip:\n{body}\n      - -e .\n"
    )
    return {weeks.REPO / "environment.yml": text}


# -- all together ---------------------------------------------------------------------------
def expected_files() -> dict[Path, str]:
    files = expected_stubs()
    files.update(expected_notebooks())
    files.update(expected_environment())
    return files


def stale_files() -> list[str]:
    """Generated files that differ from what their source produces (or should not exist)."""
    stale = []
    expected = expected_files()
    for path, text in expected.items():
        if not path.exists() or path.read_text() != text:
            stale.append(str(path.relative_to(weeks.REPO)))
    for path in weeks.STUDENT_PACKAGE.rglob("*.py"):
        if path not in expected:
            stale.append(f"{path.relative_to(weeks.REPO)} (no source in solutions/)")
    return stale


def write_all() -> list[str]:
    changed = []
    for path, text in expected_files().items():
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(str(path.relative_to(weeks.REPO)))
    return changed

