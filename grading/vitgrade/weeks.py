"""The course's registry: which weeks exist, their modules and tasks, and every path derived from them.

A week is one identifier, ``Week(2, "vit", ...)``, whose :attr:`Week.id` ``"02_vit"`` names everything:

=====================================  ==============================================
the student folder                     ``weeks/02_vit/`` (README, generated notebook)
the notebook source                    ``solutions/notebooks/02_vit.py``
the student notebook                   ``weeks/02_vit/02_vit.ipynb``
the public and hidden tests            ``tests/public/02_vit/``, ``tests/hidden/02_vit/``
the mutants the hidden tests must catch ``tests/mutants/02_vit/``
the zoo of broken/hostile submissions  ``grading/zoo/02_vit/`` (optional)
the nbgrader assignment                ``02_vit``
=====================================  ==============================================

Everything else (stub generation, nbgrader build, release, verify, grading) reads this one table.
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
# Probe code shared by every week's hidden suite (course-defined reference models, helpers); it
# runs inside the sandbox next to the week's own probes (see vitgrade.judging.api).
COMMON_PROBES = TESTS / "hidden" / "common"

# Third-party packages every week's exercise modules may import (see Week.allowed).
BASE_PACKAGES = ("torch", "numpy")

# Modules of the package that every week ships (no exercises in them).
SHARED_MODULES = ("__init__.py", "scale.py", "checks.py", "data.py", "pretrained.py", "profiling.py",
                  "models.py", "batches.py", "train.py",  # Week 3: CNN teacher, on-device batches, training command
                  "compare.py")  # Week 7: the fair ViT-vs-CNN comparison command


@dataclass(frozen=True)
class Task:
    id: str  # "1.2"
    title: str

    @property
    def grade_id(self) -> str:
        """The nbgrader grade_id of the task's autograder cell: "1.2" -> "task_1_2"."""
        return task_grade_id(self.id)


@dataclass(frozen=True)
class Week:
    number: int
    slug: str  # "attention": the id is "01_attention"
    title: str
    modules: tuple[str, ...]  # exercise modules the student edits, relative to vitcourse/
    tasks: tuple[Task, ...]
    sample_mutant: str = ""  # the realistic bug of the bundled "buggy" sample submission
    # Libraries the hidden suite compares with: imported once, before grading starts, by the
    # process every judge is forked from (vitgrade.confine.zygote), not once per submission.
    references: tuple[str, ...] = ()
    # Third-party packages the week's exercise modules may import, besides torch, numpy, the
    # standard library and vitcourse itself (an allow-list: everything else is refused, with a
    # message naming the package and this rule). The student's process holds only these, the
    # probe packages and what they need: other packages are not in its file view, and the
    # process it is forked from has not imported them.
    allowed: tuple[str, ...] = ()
    # Packages the week's probes (the grader's code, run next to the student's) import in the
    # student's process, e.g. timm to build a model the exercise works on. They are in its view,
    # but the exercise modules may not import them (a static check in the judge, and the import
    # guard in the process).
    probe_packages: tuple[str, ...] = ()

    @property
    def student_packages(self) -> tuple[str, ...]:
        """What the week's exercise modules may import besides the standard library and vitcourse."""
        return BASE_PACKAGES + self.allowed

    @property
    def worker_packages(self) -> tuple[str, ...]:
        """Every package the student's process may hold: the student's and the probes'."""
        return self.student_packages + tuple(p for p in self.probe_packages if p not in self.allowed)

    @property
    def import_rule(self) -> str:
        """The rule in words, for the message a student who breaks it gets."""
        names = ", ".join(self.student_packages)
        return (f"Week {self.number}'s exercise modules may import only {names}, the standard library and "
                f"vitcourse (the libraries that do the exercise for real are what you are graded against)")

    @property
    def id(self) -> str:
        return f"{self.number:02d}_{self.slug}"

    @property
    def assignment(self) -> str:
        """The nbgrader assignment name."""
        return self.id

    @property
    def folder(self) -> Path:
        return WEEKS_DIR / self.id

    @property
    def notebook_source(self) -> Path:
        return SOLUTION_NOTEBOOKS / f"{self.id}.py"

    @property
    def notebook_name(self) -> str:
        return f"{self.id}.ipynb"

    @property
    def student_notebook(self) -> Path:
        return self.folder / self.notebook_name

    def suite_dir(self, suite: str) -> Path:
        """``tests/<suite>/<id>`` for suite 'public' or 'hidden'."""
        return TESTS / suite / self.id

    @property
    def mutants_dir(self) -> Path:
        return TESTS / "mutants" / self.id

    @property
    def zoo_dir(self) -> Path:
        return GRADING / "zoo" / self.id

    @property
    def support_modules(self) -> tuple[str, ...]:
        """Earlier weeks' exercise modules: this week's code builds on them, and the grader overlays
        their reference versions so an old bug never costs points twice."""
        return tuple(m for w in WEEKS.values() if w.number < self.number for m in w.modules)

    @property
    def import_names(self) -> list[str]:
        return [f"{PACKAGE}.{m.removesuffix('.py')}" for m in self.modules]

    def task(self, task_id: str) -> Task:
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise KeyError(f"week {self.number} has no task {task_id}")


def task_grade_id(task_id: str) -> str:
    """"1.2" -> "task_1_2" (the nbgrader grade_id of a task's autograder cell)."""
    return "task_" + task_id.replace(".", "_")


def grade_id_task(grade_id: str) -> str | None:
    """"task_1_2" -> "1.2"; None for a grade_id that is not a task's."""
    if not grade_id.startswith("task_"):
        return None
    return grade_id.removeprefix("task_").replace("_", ".")


WEEKS: dict[int, Week] = {
    1: Week(
        number=1,
        slug="attention",
        title="The Engine Room: attention from scratch",
        modules=("attention.py",),
        tasks=(
            Task("1.1", "ScaledDotProductAttention"),
            Task("1.2", "MultiHeadAttention"),
            Task("1.3", "The reverse-sequence task"),
        ),
        sample_mutant="mask_fill_zero",
    ),
    2: Week(
        number=2,
        slug="vit",
        title="Patches to predictions: patch embedding and a complete ViT",
        modules=("patches.py", "positions.py", "vit.py"),
        tasks=(
            Task("2.1", "patchify and unpatchify"),
            Task("2.2", "PatchEmbedding: a linear layer that is a convolution"),
            Task("2.3", "Position embeddings: sin/cos tables and resizing a learned table"),
            Task("2.4", "VisionTransformer"),
            Task("2.5", "Cost accounting: tokens, parameters, FLOPs"),
        ),
        sample_mutant="post_norm",
        references=("timm",),
    ),
    3: Week(
        number=3,
        slug="training",
        title="Training ViTs: the recipe, augmentation, distillation, fine-tuning",
        modules=("schedules.py", "optim.py", "augment.py", "distill.py", "training.py", "finetune.py"),
        tasks=(
            Task("3.1", "Learning-rate schedule: linear warmup, cosine decay"),
            Task("3.2", "AdamW parameter groups"),
            Task("3.3", "Mixup, CutMix and soft-target cross-entropy"),
            Task("3.4", "Knowledge distillation: soft and hard targets, the distillation token"),
            Task("3.5", "The training loop: clipping, logging, checkpoint and resume"),
            Task("3.6", "Fine-tuning a timm model: linear probe or everything"),
        ),
        sample_mutant="no_t_squared",
        references=("timm",),
        allowed=("tqdm", "tensorboard"),
        probe_packages=("timm",),
    ),
    4: Week(
        number=4,
        slug="swin",
        title="Swin Transformer: windows, shifted windows and a hierarchy",
        modules=("swin.py",),
        tasks=(
            Task("4.1", "window_partition and window_reverse"),
            Task("4.2", "The relative position index and bias"),
            Task("4.3", "WindowAttention: Week 1 attention with a relative position bias and a mask"),
            Task("4.4", "The shifted-window mask"),
            Task("4.5", "SwinTransformerBlock: W-MSA and SW-MSA"),
            Task("4.6", "PatchMerging"),
            Task("4.7", "A small hierarchical SwinTransformer"),
        ),
        sample_mutant="no_reverse_roll",
        references=("timm",),
    ),
    5: Week(
        number=5,
        slug="clip_dino",
        title="CLIP and DINOv2: contrastive and self-supervised features",
        modules=("contrastive.py", "features.py", "zeroshot.py", "knn.py", "probe.py"),
        tasks=(
            Task("5.1", "The symmetric InfoNCE (CLIP) loss"),
            Task("5.2", "Frozen features: a batched, no-grad extraction loop"),
            Task("5.3", "Zero-shot classification from prompt templates"),
            Task("5.4", "The temperature-weighted k-NN classifier of DINO"),
            Task("5.5", "The linear probe"),
        ),
        sample_mutant="average_without_renormalising",
        references=("open_clip",),
        allowed=("tqdm",),
    ),
    6: Week(
        number=6,
        slug="interpretability",
        title="Interpretability: attention maps, rollout, gradients, heads, measured against the truth",
        modules=("attention_maps.py", "rollout.py", "gradient_attention.py", "head_stats.py", "ablation.py",
                 "faithfulness.py"),
        tasks=(
            Task("6.1", "Attention extraction with forward hooks, the model left as found"),
            Task("6.2", "Attention rollout"),
            Task("6.3", "Gradient-weighted attention"),
            Task("6.4", "Statistics per layer and head: distance, entropy, CLS, sparsity"),
            Task("6.5", "Head ablation"),
            Task("6.6", "Faithfulness: deletion curve, pointing game, mass inside the object"),
        ),
        sample_mutant="rollout_without_identity",
        references=("timm",),
        allowed=("tqdm",),
        probe_packages=("timm",),
    ),
    7: Week(
        number=7,
        slug="vit_vs_cnn",
        title="ViT vs CNN: Grad-CAM, adversarial attacks, transfer, shape bias, error analysis",
        modules=("gradcam.py", "attacks.py", "robustness.py", "errors.py"),
        tasks=(
            Task("7.1", "Grad-CAM for a CNN layer and a ViT block"),
            Task("7.2", "FGSM and PGD under an L-infinity budget"),
            Task("7.3", "Robustness curves: accuracy against epsilon, and the area under it"),
            Task("7.4", "Transfer: adversarial examples from one model on another"),
            Task("7.5", "Perturbations kept to low or high spatial frequencies"),
            Task("7.6", "Shape bias on cue-conflict images"),
            Task("7.7", "Error taxonomy and confusion matrices"),
        ),
        sample_mutant="pgd_projection_before_step",
        references=("pytorch_grad_cam", "torchattacks", "timm"),
        allowed=("tqdm",),
        probe_packages=("timm",),
    ),
    8: Week(
        number=8,
        slug="archaeology",
        title="Attention Archaeology: the portfolio project, Carlini-Wagner and significance",
        modules=("cw.py", "significance.py"),
        tasks=(
            Task("8.1", "The Carlini-Wagner L2 attack: tanh box, margin with confidence, Adam, a search over c"),
            Task("8.2", "Is the difference real? McNemar's test and Wilson intervals"),
        ),
        sample_mutant="cw_kappa_ignored",
        references=("torchattacks", "scipy"),
    ),
}


def get(number: int | str) -> Week:
    """A week by number (2, "2") or id ("02_vit"); a clear error for one that does not exist."""
    for week in WEEKS.values():
        if str(number) in (str(week.number), week.id):
            return week
    raise SystemExit(f"no week {number}; the course has weeks {sorted(WEEKS)}")


def of_task(task_id: str) -> Week:
    """The week a task id ("2.3") belongs to."""
    return get(int(task_id.split(".")[0]))


def by_assignment(assignment: str) -> Week:
    for week in WEEKS.values():
        if week.assignment == assignment:
            return week
    raise ValueError(f"no week in the registry has the nbgrader assignment {assignment!r}")
