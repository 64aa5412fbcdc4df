"""The mutant zoo: realistic buggy versions of a week's reference solution.

Each ``tests/mutants/<week id>/<name>.mutant`` file is a small, readable patch against a
solution module, so no mutant is a hand-kept copy of the solution::

    # Softmax over the queries (dim=-2) instead of the keys.
    file: attention.py
    <<<<<<< solution
            weights = scores.softmax(dim=-1)  # normalise over the keys: rows sum to 1
    =======
            weights = scores.softmax(dim=-2)
    >>>>>>> mutant

Lines starting with ``#`` before the first block describe the bug. Every ``solution`` block
must occur exactly once in the named module, so a mutant that no longer applies (because the
solution changed) fails ``vitgrade verify`` instead of silently testing nothing.

A week that grades its notebook (``Week.notebook_tasks``) also keeps ``*.notebook`` mutants: a
realistic mistake in the report, as an edit (:mod:`vitgrade.selfcheck.nbedits`) of the executed
reference notebook, graded with the reference package::

    # The head ranking shown as its first ten rows.
    # edit: truncate_table head_ranking 10
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vitgrade import weeks


@dataclass
class Mutant:
    name: str
    description: str
    file: str
    blocks: list[tuple[str, str]]  # (solution text, mutant text)

    def apply(self, package_dir: Path) -> None:
        """Patch ``package_dir/<file>`` (a copy of the solution package) in place."""
        path = package_dir / self.file
        text = path.read_text()
        for old, new in self.blocks:
            count = text.count(old)
            if count != 1:
                raise ValueError(f"mutant {self.name}: its solution block occurs {count} times "
                                 f"in {self.file} (expected exactly once); update the mutant")
            text = text.replace(old, new)
        path.write_text(text)


def parse(path: Path) -> Mutant:
    lines = path.read_text().splitlines(keepends=True)
    description, file, blocks = [], None, []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("<<<<<<< solution"):
            old, new = [], []
            i += 1
            while not lines[i].startswith("======="):
                old.append(lines[i])
                i += 1
            i += 1
            while not lines[i].startswith(">>>>>>> mutant"):
                new.append(lines[i])
                i += 1
            blocks.append(("".join(old), "".join(new)))
        elif line.startswith("file:"):
            file = line.split(":", 1)[1].strip()
        elif line.startswith("#") and not blocks:
            description.append(line.lstrip("# ").strip())
        i += 1
    if not file or not blocks:
        raise ValueError(f"{path}: a mutant needs a 'file:' line and at least one block")
    return Mutant(path.stem, " ".join(description), file, blocks)


def load(week: int) -> list[Mutant]:
    return [parse(p) for p in sorted(weeks.get(week).mutants_dir.glob("*.mutant"))]


@dataclass
class NotebookMutant:
    """A mistake in the report: ``operation args`` of :mod:`vitgrade.selfcheck.nbedits` on the executed
    reference notebook (an edit that does not apply raises, so ``vitgrade verify`` reports it)."""

    name: str
    description: str
    operation: str
    args: list[str]

    def apply(self, notebook: Path) -> None:
        from vitgrade.selfcheck import nbedits

        nbedits.apply(notebook, self.operation, self.args)


def parse_notebook(path: Path) -> NotebookMutant:
    lines = [line for line in path.read_text().splitlines() if line.startswith("#")]
    edits = [line.split(":", 1)[1].split() for line in lines if line.lstrip("# ").startswith("edit:")]
    if len(edits) != 1 or not edits[0]:
        raise ValueError(f"{path}: a notebook mutant needs one '# edit: OPERATION ARGS' line")
    description = " ".join(line.lstrip("# ").strip() for line in lines if not line.lstrip("# ").startswith("edit:"))
    return NotebookMutant(path.stem, description, edits[0][0], edits[0][1:])


def load_notebooks(week: int) -> list[NotebookMutant]:
    return [parse_notebook(p) for p in sorted(weeks.get(week).mutants_dir.glob("*.notebook"))]
