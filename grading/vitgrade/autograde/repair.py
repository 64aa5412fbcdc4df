"""Put a submitted notebook's structure back before it is graded, and say what was put back.

The grade comes from the student's package, judged outside the kernel (:mod:`vitgrade.autograde.nbtrust`).
nbgrader only needs the notebook to carry each autograder cell once, with the release's metadata, to
record that verdict. Left alone, nbgrader 0.9.6 lets the notebook's structure decide instead (measured,
issue 16): a deleted autograder cell scores its task 0 without a warning; a pasted or split copy makes
nbgrader drop the student ("use an old version of the nbgrader metadata format"); a notebook that is not
JSON, renamed or missing stops that student's autograde with no grade at all.

Everything here compares the submitted notebook with the release notebook (what the student started
from) and returns one line per repair, addressed to the student:

* :func:`repair` (in place): a missing graded or locked cell is put back where it was; copies of a cell
  (pasted or split) lose their nbgrader metadata and stay as ordinary cells, and the pieces of a split
  locked cell are joined back; a changed cell type, changed nbgrader metadata (points, locked) or edited
  locked source is put back; a locked cell merged with a neighbour is separated again, keeping the
  neighbour's text; nbgrader metadata the release does not have is removed; the kernel is the release's.
* :func:`load` never fails: a notebook that is missing, larger than ``VITGRADE_NOTEBOOK_MB``, with more
  cells than ``VITGRADE_NOTEBOOK_CELLS``, that takes longer than ``VITGRADE_NOTEBOOK_SECONDS`` to read
  and repair, not JSON or not a notebook is replaced by a copy of the release notebook, with a line
  saying why. Every step is linear in the notebook's size (one pass, or one pass per released cell),
  so the limits bound the time a notebook can cost a batch: a 56 MB notebook of 140,000 pasted copies
  of a locked cell stops at the cell count, after parsing its JSON once.
* :func:`locate` and :func:`stage` find a renamed notebook in a submission folder (or none) and put a copy
  under the expected name into a staging folder; ``submitted/`` itself is never written.
* :func:`annotate` writes the lines into the notebook: a Markdown cell at the top (the student's
  feedback shows it) and ``metadata.vitgrade.notebook`` (read back into the verdict).

Not repaired: answer (solution) cells the student deleted; nothing graded depends on them.
"""

from __future__ import annotations

import contextvars
import copy
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode
from nbformat.v4.nbbase import random_cell_id

from vitgrade import settings, weeks
from vitgrade.judging.results import one_line

NOTES_ENV = "VITGRADE_NOTEBOOK_NOTES"  # JSON: student -> the orchestrator's lines (renamed or missing notebook)
HEADER = ("**Notes from the grader about your notebook.** None of this changed your score: your points come "
          "from the hidden tests, run outside this notebook on your package (and, for a task graded from your "
          "report, on the outputs your notebook was submitted with).")
STAND_IN = "The notebook below is the release notebook; your package was graded as usual."
FLAGS = ("grade", "solution", "locked", "task")  # the nbgrader flags that decide how a cell is graded


def limit_bytes() -> int:
    return int(settings.notebook_mb() * 2**20)


class TooSlow(Exception):
    """Reading and repairing the notebook took longer than ``VITGRADE_NOTEBOOK_SECONDS``."""


_DEADLINE: contextvars.ContextVar[float] = contextvars.ContextVar("repair_deadline", default=float("inf"))


def _tick() -> None:
    """Called once per cell in every loop of the repair: stop when the notebook's time is up."""
    if time.monotonic() > _DEADLINE.get():
        raise TooSlow()


def _meta(cell: NotebookNode) -> dict | None:
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta if isinstance(meta, dict) else None


def _grade_id(cell: NotebookNode) -> str | None:
    meta = _meta(cell)
    return meta.get("grade_id") if meta else None


def _needed(meta: dict) -> bool:
    """A cell nbgrader needs: graded, read-only (locked) or a task."""
    return bool(meta.get("grade") or meta.get("locked") or meta.get("task"))


def _locked(meta: dict) -> bool:
    """nbgrader overwrites the source of these with the source version (``utils.is_locked``)."""
    return not meta.get("solution") and _needed(meta)


def label(grade_id: str, meta: dict | None = None) -> str:
    """How the student knows the cell: "The autograder cell for Task 1.1 (task_1_1)"."""
    task = weeks.grade_id_task(grade_id)
    if task:
        return f"The autograder cell for Task {task} ({grade_id})"
    return f"Your answer cell {grade_id}" if (meta or {}).get("solution") else f"The cell {grade_id}"


def _same(a: str, b: str) -> bool:
    return a.strip() == b.strip()


def _fresh(cell: NotebookNode) -> NotebookNode:
    """A copy of a released cell, without outputs."""
    cell = copy.deepcopy(cell)
    if cell.cell_type == "code":
        cell.outputs, cell.execution_count = [], None
    return cell


def _blank(release: NotebookNode) -> NotebookNode:
    nb = copy.deepcopy(release)
    nb.cells = [_fresh(c) for c in release.cells]
    return nb


def _ordinary(cell: NotebookNode) -> None:
    """Strip what makes a cell graded or locked; its text stays."""
    for key in ("nbgrader", "editable", "deletable"):
        cell.metadata.pop(key, None)


def _index(nb: NotebookNode, cell: NotebookNode) -> int:
    return next(i for i, c in enumerate(nb.cells) if c is cell)


def _new_cell(cell_type: str, source: str) -> NotebookNode:
    if cell_type == "markdown":
        return nbformat.v4.new_markdown_cell(source)
    if cell_type == "raw":
        return nbformat.v4.new_raw_cell(source)
    return nbformat.v4.new_code_cell(source)


def _set_type(cell: NotebookNode, cell_type: str) -> None:
    cell.cell_type = cell_type
    if cell_type == "code":
        cell.outputs, cell.execution_count = [], None
        cell.pop("attachments", None)
    else:
        cell.pop("outputs", None)
        cell.pop("execution_count", None)


# --------------------------------------------------------------------------- the repair


def repair(nb: NotebookNode, release: NotebookNode) -> list[str]:
    """Make ``nb`` carry every graded and locked cell of ``release`` exactly once, as released; keep
    the student's own text. Returns one line per repair (empty: nothing to repair)."""
    ref = {_grade_id(cell): cell for cell in release.cells if _grade_id(cell)}  # grade id -> released cell
    nb.metadata.pop("vitgrade", None)  # only the grader writes this
    notes = _unknown(nb, ref)
    notes += _duplicates(nb, ref)
    notes += _reattach(nb, ref)
    notes += _kept(nb, release, ref)
    notes += _missing(nb, release, ref)
    notes += _kernel(nb, release)
    _ensure_ids(nb)
    return notes


def _unknown(nb: NotebookNode, ref: dict) -> list[str]:
    """nbgrader metadata the release does not have (a cell from another notebook, a broken editor)."""
    notes = []
    for cell in nb.cells:
        _tick()
        if "nbgrader" not in cell.get("metadata", {}) or _grade_id(cell) in ref:
            continue
        meta = _meta(cell) or {}
        if any(meta.get(flag) for flag in FLAGS):
            notes.append(f"A cell carried nbgrader metadata ({meta.get('grade_id') or 'without a grade id'}) "
                         "that the release notebook does not have; it is kept as an ordinary cell.")
        _ordinary(cell)
    return notes


def _duplicates(nb: NotebookNode, ref: dict) -> list[str]:
    """One cell per grade id: the original keeps the metadata (its release cell id, else the release
    text for a locked cell, else the first); copies become ordinary cells. The pieces of a split
    locked cell (its text, cut in parts) are dropped and the original gets its whole text back."""
    groups: dict[str, list[NotebookNode]] = {}
    for cell in nb.cells:
        _tick()
        if (gid := _grade_id(cell)) is not None:
            groups.setdefault(gid, []).append(cell)
    notes = []
    drop: set[int] = set()  # the pieces of split cells, removed below in one pass (linear)
    for gid, cells in groups.items():
        _tick()
        if len(cells) < 2:
            continue
        original = ref[gid]
        locked, name = _locked(_meta(original)), label(gid, _meta(original))
        keep = _original(cells, original, locked)
        copies = [c for c in cells if c is not keep]
        for cell in copies:
            _ordinary(cell)
        if locked and _squash("".join(c.source for c in cells)) == _squash(original.source):
            drop.update(id(cell) for cell in copies)
            keep.source = original.source
            notes.append(f"{name} was split into {len(cells)} cells; it was joined back.")
        else:
            notes.append(f"{name} appeared {len(cells)} times (copied and pasted, or split); the copies are kept "
                         "as ordinary cells.")
    if drop:
        nb.cells = [cell for cell in nb.cells if id(cell) not in drop]
    return notes


def _squash(text: str) -> str:
    return "".join(text.split())


def _original(cells: list[NotebookNode], original: NotebookNode, locked: bool) -> NotebookNode:
    same_id = [c for c in cells if c.get("id") and c.get("id") == original.get("id")]
    if len(same_id) == 1:
        return same_id[0]
    if locked:
        for cell in cells:
            if _same(cell.source, original.source):
                return cell
    return cells[0]


def _reattach(nb: NotebookNode, ref: dict) -> list[str]:
    """A cell that lost its nbgrader metadata but kept its release cell id gets it back."""
    present = {_grade_id(c) for c in nb.cells}
    notes = []
    for gid, original in ref.items():
        if gid in present or not original.get("id"):
            continue
        for cell in nb.cells:
            if cell.get("id") == original.id and "nbgrader" not in cell.metadata:
                cell.metadata["nbgrader"] = copy.deepcopy(_meta(original))
                notes.append(f"{label(gid, _meta(original))} had lost its nbgrader metadata; it was put back.")
                break
    return notes


def _kept(nb: NotebookNode, release: NotebookNode, ref: dict) -> list[str]:
    """Every cell the release has: its type and nbgrader metadata; for a locked one, its text (a
    neighbour merged into it is split off again as an ordinary cell)."""
    notes = []
    for cell in list(nb.cells):
        _tick()
        gid = _grade_id(cell)
        if gid is None:
            continue
        original = ref[gid]
        meta, want = _meta(cell), _meta(original)
        changes = []
        if cell.cell_type != original.cell_type:
            changes.append(f"it had been changed to a {cell.cell_type} cell")
            _set_type(cell, original.cell_type)
        changes += _flag_changes(meta, want)
        cell.metadata["nbgrader"] = copy.deepcopy(want)
        for key in ("editable", "deletable"):
            if key in original.metadata:
                cell.metadata[key] = original.metadata[key]
            else:
                cell.metadata.pop(key, None)
        if _locked(want) and not _same(cell.source, original.source):
            core = original.source.strip()
            if core and core in cell.source:
                before, after = cell.source.split(core, 1)
                _split_off(nb, release, cell, before, after)
                changes.append("another cell had been merged into it, and was separated again")
            else:
                changes.append("its text had been edited")
            cell.source = original.source
        if changes:
            notes.append(f"{label(gid, _meta(original))}: {'; '.join(changes)}. The released cell was put back.")
    return notes


def _flag_changes(meta: dict, want: dict) -> list[str]:
    changes = []
    try:
        points_changed = float(meta.get("points", 0) or 0) != float(want.get("points", 0) or 0)
    except (TypeError, ValueError):
        points_changed = True
    if points_changed:
        changes.append(f"its points were {meta.get('points')!r} instead of {want.get('points', 0):g}")
    if bool(meta.get("locked")) != bool(want.get("locked")):
        changes.append("it had been unlocked" if want.get("locked") else "it had been locked")
    for flag in ("grade", "solution", "task"):
        if bool(meta.get(flag)) != bool(want.get(flag)):
            changes.append(f"its nbgrader '{flag}' flag was {bool(meta.get(flag))}")
    return changes


def _split_off(nb: NotebookNode, release: NotebookNode, cell: NotebookNode, before: str, after: str) -> None:
    """Put merged-in text back into cells of its own around ``cell``, with its released type if the
    text is a released cell's."""
    types = {c.source.strip(): c.cell_type for c in release.cells}
    i = _index(nb, cell)
    if after.strip():
        nb.cells.insert(i + 1, _new_cell(types.get(after.strip(), cell.cell_type), after.strip()))
    if before.strip():
        nb.cells.insert(i, _new_cell(types.get(before.strip(), cell.cell_type), before.strip()))


def _missing(nb: NotebookNode, release: NotebookNode, ref: dict) -> list[str]:
    """Put back every needed cell the notebook no longer has, where it was: after the nearest earlier
    released cell still there (or out of the cell it was merged into)."""
    present = {_grade_id(c) for c in nb.cells}
    place = _matches(nb, release)
    used = {c.get("id") for c in nb.cells}
    notes = []
    for index, original in enumerate(release.cells):
        _tick()
        meta = _meta(original)
        if not meta or not _needed(meta) or meta.get("grade_id") in present:
            continue
        cell = _fresh(original)
        if cell.get("id") in used:
            cell.id = random_cell_id()
        used.add(cell.get("id"))
        host = _host(nb, original.source)
        if host is not None:
            text = host.source
            at = text.find(original.source.strip())
            host.source = (text[:at] + text[at + len(original.source.strip()):]).strip()
            i = _index(nb, host)
            if not host.source:
                nb.cells[i] = cell
                place.update({k: cell for k, v in place.items() if v is host})
            else:
                nb.cells.insert(i if at == 0 else i + 1, cell)
            notes.append(f"{label(meta['grade_id'], meta)} had been merged into another cell; it was separated "
                         "and put back.")
        else:
            nb.cells.insert(_position(nb, place, index), cell)
            notes.append(f"{label(meta['grade_id'], meta)} was missing; it was put back from the release notebook.")
        place[index] = cell
    return notes


def _matches(nb: NotebookNode, release: NotebookNode) -> dict[int, NotebookNode]:
    """Released cell index -> the notebook's cell for it (by grade id, cell id, or identical text)."""
    by_gid = {_grade_id(c): c for c in nb.cells if _grade_id(c)}
    by_id = {c.get("id"): c for c in nb.cells if c.get("id")}
    by_text: dict[str, list[NotebookNode]] = {}  # ungraded cells by their text, in notebook order
    for cell in nb.cells:
        _tick()
        if not _grade_id(cell) and isinstance(cell.get("source"), str) and cell.source.strip():
            by_text.setdefault(cell.source.strip(), []).append(cell)
    taken: set[int] = set()
    place = {}
    for index, original in enumerate(release.cells):
        gid = _grade_id(original)
        found = by_gid.get(gid) if gid else by_id.get(original.get("id"))
        if found is None and not gid and original.source.strip():
            found = next((c for c in by_text.get(original.source.strip(), []) if id(c) not in taken), None)
        if found is not None and id(found) not in taken:
            taken.add(id(found))
            place[index] = found
    return place


def _position(nb: NotebookNode, place: dict[int, NotebookNode], index: int) -> int:
    earlier = [i for i in place if i < index]
    if earlier:
        return _index(nb, place[max(earlier)]) + 1
    later = [i for i in place if i > index]
    return _index(nb, place[min(later)]) if later else len(nb.cells)


def _host(nb: NotebookNode, text: str) -> NotebookNode | None:
    """An unlocked cell that holds ``text`` (a released locked cell merged into it)."""
    text = text.strip()
    if not text:
        return None
    for cell in nb.cells:
        meta = _meta(cell)
        if (meta is None or not _locked(meta)) and text in cell.source:
            return cell
    return None


def _kernel(nb: NotebookNode, release: NotebookNode) -> list[str]:
    want = release.metadata.get("kernelspec") or {}
    got = nb.metadata.get("kernelspec")
    name = got.get("name") if isinstance(got, dict) else None
    notes = []
    if want and name != want.get("name"):
        notes.append(f"Your notebook was saved with the kernel {name!r}; it was graded with the course's "
                     f"kernel {want.get('name')!r}.")
    if want:
        nb.metadata["kernelspec"] = copy.deepcopy(want)
    if "language_info" in release.metadata:
        nb.metadata["language_info"] = copy.deepcopy(release.metadata["language_info"])
    return notes


def _ensure_ids(nb: NotebookNode) -> None:
    """nbformat 4.5: every cell has a unique id (restored and split-off cells, an old 4.4 notebook)."""
    nb.nbformat, nb.nbformat_minor = 4, max(5, nb.get("nbformat_minor", 5))
    seen = set()
    for cell in nb.cells:
        _tick()
        if not cell.get("id") or cell.id in seen:
            cell.id = random_cell_id()
        seen.add(cell.id)


# --------------------------------------------------------------------------- reading, finding, staging


def load(path: Path, release: NotebookNode, name: str | None = None) -> tuple[NotebookNode, list[str]]:
    """The notebook at ``path``, repaired against ``release``, and the repair lines. When it cannot
    be read, or is beyond the limits (size, cells, time), a copy of the release notebook and the
    reason. Never raises for the notebook's sake."""
    name = name or path.name
    stand_in = STAND_IN
    try:
        size = path.stat().st_size
    except OSError:
        return _blank(release), [f"Your notebook {name} was missing from the submission. {stand_in}"]
    if path.is_symlink():  # never read another file with the grader's rights
        return _blank(release), [f"Your notebook {name} is a link, not a file; it was not read. {stand_in}"]
    if size > limit_bytes():
        return _blank(release), [
            f"Your notebook {name} is {size / 2**20:.0f} MB (the limit is {settings.notebook_mb():g} MB), "
            f"almost always because of saved output; it was not read. {stand_in} "
            "Clear all outputs before you submit (Edit > Clear Outputs of All Cells)."]
    seconds = settings.notebook_seconds()
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        text = path.read_bytes().decode("utf-8")
        data = json.loads(text)
        cells = data.get("cells") if isinstance(data, dict) else None
        if isinstance(cells, list) and len(cells) > settings.notebook_cells():
            return _blank(release), [
                f"Your notebook {name} has {len(cells)} cells (the limit is {settings.notebook_cells()}); "
                f"it was not read. {stand_in} A cell pasted thousands of times, or a script that wrote the "
                "notebook, usually explains it."]
        del data
        _tick()
        nb = nbformat.reads(text, as_version=4)
        if not isinstance(nb.get("cells"), list) or not isinstance(nb.get("metadata"), dict):
            raise ValueError("it has no list of cells")
        notes = repair(nb, release)
        _tick()
        nbformat.validate(nb)
    except TooSlow:
        return _blank(release), [
            f"Your notebook {name} took longer than {seconds:g} s to read and check (the limit); it was not "
            f"read. {stand_in}"]
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the release notebook and a reason
        return _blank(release), [f"Your notebook {name} could not be read ({_why(exc)}). {stand_in}"]
    finally:
        _DEADLINE.reset(token)
    return nb, notes


def _why(exc: Exception) -> str:
    cause = exc.__cause__ if isinstance(exc.__cause__, (json.JSONDecodeError, UnicodeDecodeError)) else exc
    if isinstance(cause, json.JSONDecodeError):
        return f"it is not valid JSON: {cause.msg}: line {cause.lineno} column {cause.colno}"
    if isinstance(cause, UnicodeDecodeError):
        return "it is not UTF-8 text"
    return f"it is not a Jupyter notebook: {one_line(str(exc))[:160]}"


def annotate(nb: NotebookNode, notes: list[str]) -> NotebookNode:
    """Record ``notes`` in ``nb``: ``metadata.vitgrade.notebook`` and, if any, a Markdown cell on top."""
    nb.metadata["vitgrade"] = {"notebook": list(notes)}
    if notes:
        text = HEADER + "\n\n" + "\n".join(f"- {note}" for note in notes)
        cell = nbformat.v4.new_markdown_cell(text, metadata={"vitgrade": "notebook notes"})
        nb.cells.insert(0, cell)
    return nb


def submitted_copy(assignment: str, nb: NotebookNode, notes: list[str]) -> tuple[bytes | None, str]:
    """What the nbgrader path carries to the judge for a week that grades its notebook
    (:attr:`vitgrade.integrity.Snapshot.notebook`): the notebook as :func:`load` read and repaired it,
    saved outputs included (nbgrader's sanitizing clears them before any kernel runs), or None and why,
    when the release notebook stands in for it. (None, "") for a week that does not grade it."""
    if not weeks.by_assignment(assignment).notebook_tasks:
        return None, ""
    stand_in = next((note for note in notes if STAND_IN in note), None)
    if stand_in is not None:
        return None, stand_in.replace(STAND_IN, "").strip()
    return nbformat.writes(nb).encode(), ""


def recorded(nb: NotebookNode) -> list[str]:
    """The lines :func:`annotate` recorded (in the autograded notebook)."""
    data = nb.metadata.get("vitgrade")
    return list(data.get("notebook", [])) if isinstance(data, dict) else []


@dataclass
class Located:
    """Where a submission's notebook is: ``path`` (None: no notebook) and what the student should hear."""

    path: Path | None
    notes: list[str]
    expected: Path

    @property
    def moved(self) -> bool:
        return self.path != self.expected


def locate(folder: Path, name: str, release: NotebookNode) -> Located:
    """The notebook of a submission folder: ``folder/name``, else the ``*.ipynb`` below ``folder``
    holding most of the release's grade ids (a renamed or moved notebook), else none."""
    expected = folder / name
    if expected.exists():
        return Located(expected, [], expected)
    others = sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts and not p.is_symlink())
    gids = [g for g in (_grade_id(c) for c in release.cells) if g]
    scores = {p: _overlap(p, gids) for p in others}
    best = max((p for p in others if scores[p] > 0), key=lambda p: scores[p], default=None)
    rest = [str(p.relative_to(folder)) for p in others if p != best]
    extra = f" (also in the submission, not graded: {', '.join(rest)})" if rest else ""
    if best is None:
        return Located(None, [f"Your notebook {name} was missing from the submission{extra}. The notebook below "
                              "is the release notebook; your package was graded as usual."], expected)
    return Located(best, [f"Your notebook was submitted as {best.relative_to(folder)} instead of {name}{extra}; "
                          f"it was graded as {name}."], expected)


def _overlap(path: Path, grade_ids: list[str]) -> int:
    try:
        if path.stat().st_size > limit_bytes():
            return 1  # too large to look inside; still the best guess if it is the only notebook
        text = path.read_text(errors="replace")
    except OSError:
        return 0
    return sum(f'"{gid}"' in text for gid in grade_ids)


def stage(located: Located, folder: Path, staged: Path, release_path: Path) -> Path:
    """A copy of the submission ``folder`` in ``staged`` with the notebook under its expected name
    (the renamed one, or the release notebook when there is none). ``folder`` is not changed."""
    shutil.rmtree(staged, ignore_errors=True)
    shutil.copytree(folder, staged, symlinks=True, ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"))
    shutil.copy2(located.path or release_path, staged / located.expected.name)
    return staged


# --------------------------------------------------------------------------- the grade path


def find_notebook(week: weeks.Week, folder: Path) -> Path | None:
    """Where a submission folder's notebook is, as :func:`inspect_submission` finds it: ``<id>.ipynb``,
    ``weeks/<id>/<id>.ipynb``, else the renamed one (:func:`locate`); None when there is none."""
    for place in (folder / week.notebook_name, folder / "weeks" / week.id / week.notebook_name):
        if os.path.lexists(place):
            return place
    if next(folder.rglob("*.ipynb"), None) is None:
        return None
    return locate(folder, week.notebook_name, nbformat.read(week.student_notebook, as_version=4)).path


def inspect_submission(week: weeks.Week, folder: Path) -> list[str]:
    """``vitgrade grade`` does not grade a notebook's structure. When a submission folder holds one (as
    ``<id>.ipynb``, ``weeks/<id>/<id>.ipynb`` or renamed), the same checks as the nbgrader path,
    against the student notebook of the course; no notebook, no lines."""
    reference = nbformat.read(week.student_notebook, as_version=4)
    for place in (folder / week.notebook_name, folder / "weeks" / week.id / week.notebook_name):
        if place.exists():
            return load(place, reference)[1]
    located = locate(folder, week.notebook_name, reference)
    if located.path is None:
        return []
    return located.notes + load(located.path, reference, week.notebook_name)[1]
