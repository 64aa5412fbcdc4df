"""Submission folders made from their sources: the reference, the untouched stub, or either with a patch.

The one way every self-check builds a submission (``vitgrade verify``'s mutants, the zoo, the
benchmark, the nbgrader demo): nothing is kept as a copy, so a change to a solution reaches them all.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from vitgrade import weeks
from vitgrade.build.mutants import Mutant

KINDS = ("solution", "stub")


def fill(package: Path, kind: str = "solution", mutant: Mutant | None = None) -> Path:
    """Write every week's exercise modules into ``package`` (a copy of the student package, or an
    nbgrader release's): the reference for ``kind="solution"``, the stubs for ``"stub"``; then
    apply ``mutant`` (a patch against the reference)."""
    if kind not in KINDS:
        raise ValueError(f"unknown submission kind {kind!r}; expected one of {KINDS}")
    source = weeks.SOLUTION_PACKAGE if kind == "solution" else weeks.STUDENT_PACKAGE
    for module in (m for w in weeks.WEEKS.values() for m in w.modules):
        if (source / module).exists():
            shutil.copy2(source / module, package / module)
    if mutant is not None:
        mutant.apply(package)
    return package


def make(dest: Path, kind: str = "solution", mutant: Mutant | None = None) -> Path:
    """A submission folder ``dest`` holding ``vitcourse/``: the student package, filled (:func:`fill`)."""
    package = dest / weeks.PACKAGE
    shutil.copytree(weeks.STUDENT_PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    fill(package, kind, mutant)
    return dest
