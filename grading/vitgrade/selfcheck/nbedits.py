"""What students do to a notebook by accident, as operations on a submission folder.

The zoo's ``*.notebook`` entries (:mod:`vitgrade.selfcheck.zoo`) name one of these operations and
its arguments (``edit: duplicate task_1_3``); it is applied to the notebook of a reference-solution
submission. Each operation does what the editor does, as read in JupyterLab 4's notebook actions:
a pasted cell keeps its metadata and gets a new id; "split cell" gives the pieces before the cursor
new cells with a copy of the metadata and leaves the last piece in the original cell; "merge" makes
one new cell with the active cell's type and metadata. JupyterLab refuses to edit, split, merge or
delete a cell the release marks ``"editable": false`` / ``"deletable": false``; VS Code, Colab and
text editors do not, so every one of these happens to graded cells too.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode

Edit = Callable[[Path, list[str]], None]  # (the notebook's path, arguments)


def _load(path: Path) -> NotebookNode:
    return nbformat.read(path, as_version=4)


def _save(nb: NotebookNode, path: Path) -> None:
    nbformat.write(nb, path)


def _index(nb: NotebookNode, grade_id: str) -> int:
    for i, cell in enumerate(nb.cells):
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            return i
    raise KeyError(f"the notebook has no cell {grade_id}")


def _new_id() -> str:
    return uuid.uuid4().hex[:8]


def _cells_edit(change: Callable[[NotebookNode, list[str]], None]) -> Edit:
    def edit(path: Path, args: list[str]) -> None:
        nb = _load(path)
        change(nb, args)
        _save(nb, path)

    edit.__doc__ = change.__doc__
    return edit


@_cells_edit
def delete(nb: NotebookNode, args: list[str]) -> None:
    """``delete GRADE_ID``: the cell is gone."""
    del nb.cells[_index(nb, args[0])]


@_cells_edit
def duplicate(nb: NotebookNode, args: list[str]) -> None:
    """``duplicate GRADE_ID``: copy and paste below (same metadata, a new cell id)."""
    i = _index(nb, args[0])
    clone = copy.deepcopy(nb.cells[i])
    clone.id = _new_id()
    nb.cells.insert(i + 1, clone)


@_cells_edit
def split(nb: NotebookNode, args: list[str]) -> None:
    """``split GRADE_ID``: split in the middle (at a line break, or a space for a one-line cell); the
    first piece is a new cell with a copy of the metadata, the original cell keeps the rest."""
    i = _index(nb, args[0])
    cell = nb.cells[i]
    text = cell.source
    lines = text.splitlines()
    if len(lines) > 1:
        head, tail = "\n".join(lines[: len(lines) // 2]), "\n".join(lines[len(lines) // 2:])
    else:
        cut = text.find(" ", len(text) // 2)
        head, tail = text[:cut], text[cut + 1:]
    first = copy.deepcopy(cell)
    first.id = _new_id()
    first.source = head
    if first.cell_type == "code":
        first.outputs, first.execution_count = [], None
    cell.source = tail
    nb.cells.insert(i, first)


@_cells_edit
def merge(nb: NotebookNode, args: list[str]) -> None:
    """``merge GRADE_ID above|below [neighbour]``: merge the cell with the cell above or below it. The
    active cell (the named one, or with ``neighbour`` the other) gives the merged cell its type and
    metadata; the merged cell gets a new id."""
    i = _index(nb, args[0])
    j = i - 1 if args[1] == "above" else i + 1
    active = j if args[2:] == ["neighbour"] else i
    first, second = sorted((i, j))
    merged = copy.deepcopy(nb.cells[active])
    merged.id = _new_id()
    merged.source = nb.cells[first].source + "\n\n" + nb.cells[second].source
    if merged.cell_type == "code":
        merged.outputs, merged.execution_count = [], None
    nb.cells[first:second + 1] = [merged]


@_cells_edit
def markdown(nb: NotebookNode, args: list[str]) -> None:
    """``markdown GRADE_ID``: the cell type changed to Markdown (the "M" key in command mode)."""
    cell = nb.cells[_index(nb, args[0])]
    cell.cell_type = "markdown"
    cell.pop("outputs", None)
    cell.pop("execution_count", None)


@_cells_edit
def tamper(nb: NotebookNode, args: list[str]) -> None:
    """``tamper``: every graded cell worth 1000 points, unlocked, its code ``print('all passed')``."""
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            meta["points"] = 1000
            meta["locked"] = False
            cell.metadata.pop("editable", None)
            cell.metadata.pop("deletable", None)
            cell.source = "print('all passed')"


@_cells_edit
def kernel(nb: NotebookNode, args: list[str]) -> None:
    """``kernel NAME``: saved from another kernel (e.g. an R or a conda-environment kernel)."""
    name = args[0]
    nb.metadata["kernelspec"] = {"name": name, "display_name": f"foreign kernel {name}", "language": name}
    nb.metadata["language_info"] = {"name": name}


def huge_output(path: Path, args: list[str]) -> None:
    """``huge_output MB``: a runaway print loop saved MB megabytes of output in the first code cell
    (written in chunks: building the string and validating it would cost seconds)."""
    nb = json.loads(path.read_text())
    first = next(c for c in nb["cells"] if c["cell_type"] == "code")
    marker = "@@output@@"
    first["outputs"] = [{"output_type": "stream", "name": "stdout", "text": marker}]
    head, tail = json.dumps(nb, indent=1).split(json.dumps(marker))
    chunk = json.dumps("loss 0.123456789 step 1234567\n" * 32768)[1:-1]  # about 1 MB, JSON-escaped
    with open(path, "w") as fh:
        fh.write(head + '"')
        for _ in range(int(float(args[0]) * 2**20 / len(chunk)) + 1):
            fh.write(chunk)
        fh.write('"' + tail)


def paste_copies(path: Path, args: list[str]) -> None:
    """``paste_copies GRADE_ID MB``: copies of the cell pasted below it (same metadata, each a new
    cell id, as JupyterLab pastes) until the notebook is MB megabytes: a paste key held down, an
    editor extension or a script that went wrong (written in chunks, like ``huge_output``)."""
    nb = json.loads(path.read_text())
    i = next(k for k, c in enumerate(nb["cells"]) if c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
             == args[0])
    marker = {"cell_type": "raw", "id": "@@copies@@", "metadata": {}, "source": ""}
    nb["cells"].insert(i + 1, marker)
    head, tail = json.dumps(nb, indent=1).split(json.dumps(marker, indent=1).replace("\n", "\n  ") + ",", 1)
    template = json.dumps(nb["cells"][i])
    old_id = json.dumps(nb["cells"][i]["id"])
    size, target, n = len(head) + len(tail), float(args[1]) * 2**20, 0
    with open(path, "w") as fh:
        fh.write(head)
        while size < target:
            copy_text = template.replace(old_id, json.dumps(f"copy{n:07d}"), 1) + ",\n"
            fh.write(copy_text)
            size += len(copy_text)
            n += 1
        fh.write(tail)


def rename(path: Path, args: list[str]) -> None:
    """``rename NAME``: saved under another name (e.g. "01_attention-Copy1.ipynb")."""
    path.rename(path.with_name(args[0]))


def remove(path: Path, args: list[str]) -> None:
    """``remove``: the notebook is not in the submission."""
    path.unlink()


def invalid_json(path: Path, args: list[str]) -> None:
    """``invalid_json``: the file was cut off half-way (a failed upload or a full disk)."""
    text = path.read_text()
    json.loads(text)  # it was valid before
    path.write_text(text[: len(text) // 2])


# ---------------------------------------------------------------- a report's saved outputs
# Mistakes in the report a week grades from its notebook (Week.notebook_tasks; the verify mutants
# tests/mutants/<id>/*.notebook), applied to the executed reference notebook. Outputs are found by the
# name the notebook's figure() and table() helpers put in their metadata: {"report": {"figure": NAME}}.


def _named(nb: NotebookNode, kind: str, name: str) -> list[tuple[NotebookNode, NotebookNode]]:
    """(cell, output) for every output that shows the figure or table ``name``; at least one."""
    found = [(cell, out) for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
             if out.get("metadata", {}).get("report", {}).get(kind) == name]
    if not found:
        raise KeyError(f"the notebook shows no {kind} {name}")
    return found


def _table_lines(out: NotebookNode) -> list[str]:
    return out.data["text/markdown"].splitlines()


def _edit_rows(nb: NotebookNode, name: str, change: Callable[[list[str]], list[str]]) -> None:
    """Apply ``change`` to the rows (the lines below the |---| line) of every output of table ``name``."""
    for _, out in _named(nb, "table", name):
        lines = _table_lines(out)
        start = next(i for i, line in enumerate(lines) if line.startswith("|---")) + 1
        end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
        rows = change(lines[start:end])
        if rows == lines[start:end]:
            raise ValueError(f"the edit does not change table {name}")
        out.data["text/markdown"] = "\n".join(lines[:start] + rows + lines[end:])


@_cells_edit
def drop_output(nb: NotebookNode, args: list[str]) -> None:
    """``drop_output figure|table NAME``: the figure or table is not in the saved notebook (its line deleted, or
    its cell never run after a restart)."""
    for cell, out in _named(nb, args[0], args[1]):
        cell.outputs.remove(out)


@_cells_edit
def truncate_table(nb: NotebookNode, args: list[str]) -> None:
    """``truncate_table NAME ROWS``: only the table's first ROWS rows shown (``.head()``, or a slice of its lines)."""
    _edit_rows(nb, args[0], lambda rows: rows[:int(args[1])])


@_cells_edit
def repeat_row(nb: NotebookNode, args: list[str]) -> None:
    """``repeat_row NAME ROW``: the table's row ROW (1-based) listed again in place of the next one (a loop that
    wrote one entry twice)."""
    k = int(args[1]) - 1
    _edit_rows(nb, args[0], lambda rows: rows[:k + 1] + [rows[k]] + rows[k + 2:])


@_cells_edit
def drop_row(nb: NotebookNode, args: list[str]) -> None:
    """``drop_row NAME TEXT...``: the rows whose first cell is TEXT are not in the table (a group left out)."""
    text = " ".join(args[1:])
    _edit_rows(nb, args[0], lambda rows: [r for r in rows if r.strip("|").split("|")[0].strip() != text])


@_cells_edit
def as_text(nb: NotebookNode, args: list[str]) -> None:
    """``as_text NAME``: the table printed as text (``print(open(...).read())``), not displayed as Markdown."""
    for cell, out in _named(nb, "table", args[0]):
        cell.outputs[cell.outputs.index(out)] = nbformat.v4.new_output(
            "stream", name="stdout", text=out.data["text/markdown"] + "\n")


@_cells_edit
def strip_images(nb: NotebookNode, args: list[str]) -> None:
    """``strip_images``: every picture taken out of the saved outputs, their text kept (a filter or tool that
    drops images to make notebooks small)."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if "image/png" in out.get("data", {}):
                del out.data["image/png"]
                out.metadata.pop("image/png", None)


@_cells_edit
def move_to_end(nb: NotebookNode, args: list[str]) -> None:
    """``move_to_end figure|table NAME``: the output moved to the notebook's last code cell (an appendix)."""
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    for cell, out in _named(nb, args[0], args[1]):
        cell.outputs.remove(out)
        last.outputs.append(out)


EDITS: dict[str, Edit] = {
    "delete": delete, "duplicate": duplicate, "split": split, "merge": merge, "markdown": markdown,
    "tamper": tamper, "kernel": kernel, "huge_output": huge_output, "rename": rename, "remove": remove,
    "invalid_json": invalid_json, "paste_copies": paste_copies,
    "drop_output": drop_output, "truncate_table": truncate_table, "repeat_row": repeat_row, "drop_row": drop_row,
    "as_text": as_text, "strip_images": strip_images, "move_to_end": move_to_end,
}


def apply(notebook: Path, operation: str, args: list[str]) -> None:
    """Apply one edit to the notebook at ``notebook`` (in place; it may rename or remove the file)."""
    if operation not in EDITS:
        raise ValueError(f"unknown notebook edit {operation!r}; known: {sorted(EDITS)}")
    EDITS[operation](notebook, args)
