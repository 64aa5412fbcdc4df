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


EDITS: dict[str, Edit] = {
    "delete": delete, "duplicate": duplicate, "split": split, "merge": merge, "markdown": markdown,
    "tamper": tamper, "kernel": kernel, "huge_output": huge_output, "rename": rename, "remove": remove,
    "invalid_json": invalid_json, "paste_copies": paste_copies,
}


def apply(notebook: Path, operation: str, args: list[str]) -> None:
    """Apply one edit to the notebook at ``notebook`` (in place; it may rename or remove the file)."""
    if operation not in EDITS:
        raise ValueError(f"unknown notebook edit {operation!r}; known: {sorted(EDITS)}")
    EDITS[operation](notebook, args)
