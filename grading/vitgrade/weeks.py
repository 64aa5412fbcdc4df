"""The course's registry: which weeks exist, their modules, notebooks and tasks.

Everything else (stub generation, nbgrader build, release, verify) reads this one table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOLUTIONS = REPO / "solutions"
SOLUTION_PACKAGE = SOLUTIONS / "vitcourse"
SOLUTION_NOTEBOOKS = SOLUTIONS / "notebooks"
STUDENT_PACKAGE = REPO / "src" / "vitcourse"
TESTS = REPO / "tests"
WEEKS_DIR = REPO / "weeks"
GRADING = REPO / "grading"
PACKAGE = "vitcourse"

# Modules of the package that every week ships (no exercises in them).
SHARED_MODULES = ("__init__.py", "scale.py", "checks.py", "data.py", "pretrained.py")


@dataclass(frozen=True)
class Task:
    id: str  # "1.2"
    title: str


@dataclass(frozen=True)
class Week:
    number: int
    slug: str  # folder name under weeks/, e.g. "01_attention"
    title: str
    modules: tuple[str, ...]  # exercise modules the student edits, relative to vitcourse/
    notebook: str  # jupytext source under solutions/notebooks/, without .py
    tasks: tuple[Task, ...]
    support_modules: tuple[str, ...] = ()  # earlier weeks' modules this week needs
    sample_mutant: str = ""  # the realistic bug of the bundled "buggy" sample submission

    @property
    def assignment(self) -> str:
        """The nbgrader assignment name."""
        return f"week{self.number:02d}"

    @property
    def import_names(self) -> list[str]:
        return [f"{PACKAGE}.{m.removesuffix('.py')}" for m in self.modules]


WEEKS: dict[int, Week] = {
    1: Week(
        number=1,
        slug="01_attention",
        title="The Engine Room: attention from scratch",
        modules=("attention.py",),
        notebook="week01_attention",
        tasks=(
            Task("1.1", "ScaledDotProductAttention"),
            Task("1.2", "MultiHeadAttention"),
            Task("1.3", "The reverse-sequence task"),
        ),
        sample_mutant="mask_fill_zero",
    ),
    2: Week(
        number=2,
        slug="02_vit",
        title="Patches to predictions: patch embedding and a complete ViT",
        modules=("patches.py", "positions.py", "vit.py"),
        notebook="week02_vit",
        tasks=(
            Task("2.1", "patchify and unpatchify"),
            Task("2.2", "PatchEmbedding: a linear layer that is a convolution"),
            Task("2.3", "Position embeddings: sin/cos tables and resizing a learned table"),
            Task("2.4", "VisionTransformer"),
            Task("2.5", "Cost accounting: tokens, parameters, FLOPs"),
        ),
        support_modules=("attention.py",),
        sample_mutant="post_norm",
    ),
}


def get(number: int) -> Week:
    try:
        return WEEKS[number]
    except KeyError:
        raise SystemExit(f"no week {number}; the course has weeks {sorted(WEEKS)}") from None


def suite_dir(week: int, suite: str) -> Path:
    return TESTS / suite / f"week{week:02d}"


def mutants_dir(week: int) -> Path:
    return TESTS / "mutants" / f"week{week:02d}"
