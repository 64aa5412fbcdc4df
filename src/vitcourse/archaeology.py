"""Attention Archaeology: the Week 8 project's whole excavation in one command.

    python -m vitcourse.archaeology                                  # SMOKE: the shape scenes, CPU, offline
    python -m vitcourse.archaeology --dataset shapes --out runs/shapes-smoke
    VIT_SCALE=full python -m vitcourse.archaeology --config experiments/pathmnist-full.toml   # GPU
    python -m vitcourse.archaeology --wandb                          # also log to Weights & Biases

Stages, in order (each writes its figures to ``<out>/figures``, its tables to ``<out>/tables`` as CSV and
Markdown, and ``<out>/stages/<stage>/done.json``):

===================== =================================================================================
``models``            the ViT and the CNN: loaded (SMOKE: the course's shapes models) or fine-tuned (FULL:
                      pretrained ViT-B/16 and ResNet-50 with Week 3's ``finetune``); test predictions
``attention``         attention at every layer and head (Task 6.1): the progression from block 1 to L for
                      20+ images, every head on one image, and per head its distance, entropy, CLS share and
                      sparsity (Task 6.4), by layer
``explanations``      side-by-side panels, Input | ViT rollout (6.2) | ViT gradient-weighted attention (6.3) |
                      CNN Grad-CAM (7.1); with object masks, how much of each map falls on the object (6.6)
``heads``             head importance by ablating every head alone (6.5); the head specialisation matrix
``robustness``        accuracy under FGSM and PGD (7.2, 7.3) against epsilon, and under Carlini-Wagner
                      (Task 8.1) against the L2 budget, for both models
``adversarial``       attention (ViT) and Grad-CAM (CNN) on clean and adversarial images, side by side
``taxonomy``          the failure taxonomy (7.7): only-ViT, only-CNN and both wrong, with examples and their
                      maps; accuracies with Wilson intervals and McNemar's test (8.2)
``summary``           ``summary.json`` and ``summary.md``: every number, figure and table, what made them
===================== =================================================================================

It resumes: a stage whose ``done.json`` is there, made by the same settings and the same code, is skipped
(``--redo STAGE`` or ``--redo all`` does it again). It states its scale, data, models and whose code it runs
in its first lines, and shows progress with tqdm. Tracking: TensorBoard in ``<out>/tensorboard`` always;
Weights & Biases as well with ``--wandb`` (``WANDB_MODE=offline`` works without a network; its files go to
``<out>/wandb``).

Scale: SMOKE runs on the Week 6 shape scenes with the course's small models, minutes on a CPU, offline.
FULL fine-tunes pretrained ViT-B/16 and ResNet-50 on PathMNIST or EuroSAT (the seed's bar: > 85 % test
accuracy) and needs a GPU, the dataset and the weights: without them it stops before any work and says
what is missing.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from vitcourse.scale import SCALE, Scale
from vitcourse.toolkit import (
    Subject,
    Toolkit,
    attention_stack,
    cls_maps,
    gradcam_maps,
    gradient_maps,
    rollout_maps,
    shapes_subjects,
    timm_subject,
    upsample,
)

STAGES = ("models", "attention", "explanations", "heads", "robustness", "adversarial", "taxonomy", "summary")
DATASETS = ("shapes", "pathmnist", "eurosat")
# What each stage needs (its outputs are redone when this code changes).
STAGE_PIECES = {
    "models": [],
    "attention": ["attention_maps", "head_statistics"],
    "explanations": ["attention_maps", "attention_rollout", "cls_relevance", "gradient_weighted_attention",
                     "GradCAM", "pointing_game", "mass_inside"],
    "heads": ["head_importance"],
    "robustness": ["fgsm", "pgd", "robustness_curve", "curve_area", "carlini_wagner_l2"],
    "adversarial": ["pgd", "attention_maps", "attention_rollout", "cls_relevance", "GradCAM"],
    "taxonomy": ["error_taxonomy", "attention_maps", "attention_rollout", "cls_relevance",
                 "gradient_weighted_attention", "GradCAM", "mcnemar_test", "wilson_interval"],
    "summary": [],
}
# What a complete report shows (check_report): figures and tables by name.
REQUIRED_FIGURES = ("attention_progression", "heads_gallery", "attention_by_layer", "comparisons",
                    "head_specialisation", "robustness_curves", "adversarial_attention", "failure_examples")
REQUIRED_TABLES = ("accuracy", "attention_by_layer", "head_specialisation", "head_ranking", "robustness",
                   "adversarial_attention", "taxonomy", "significance")
TAXONOMY_GROUPS = ("only_vit_wrong", "only_cnn_wrong", "both_wrong")
GROUP_TITLES = {"only_vit_wrong": "only the ViT wrong", "only_cnn_wrong": "only the CNN wrong",
                "both_wrong": "both wrong"}


# ---------------------------------------------------------------------------- settings
@dataclass
class Settings:
    """Everything that decides the results (a stage reruns when what it uses changes). Sizes differ by scale."""

    dataset: str = field(default_factory=lambda: SCALE.pick(smoke="shapes", full="pathmnist"))
    seed: int = 0
    progression_images: int = 20  # attention progression, block 1 to L (the seed: 20+)
    panels: int = field(default_factory=lambda: SCALE.pick(smoke=24, full=60))  # side by side (the seed: 50+)
    stats_images: int = field(default_factory=lambda: SCALE.pick(smoke=200, full=512))  # head statistics, maps
    ablation_images: int = field(default_factory=lambda: SCALE.pick(smoke=300, full=2000))
    attack_images: int = field(default_factory=lambda: SCALE.pick(smoke=100, full=500))  # FGSM, PGD
    cw_images: int = field(default_factory=lambda: SCALE.pick(smoke=32, full=200))
    epsilons: tuple[float, ...] = (0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255)  # L-infinity, pixel units
    show_eps: float = 4 / 255  # the adversarial images the maps are drawn on
    pgd_steps: int = field(default_factory=lambda: SCALE.pick(smoke=5, full=20))
    cw_search_steps: int = field(default_factory=lambda: SCALE.pick(smoke=4, full=9))
    cw_steps: int = field(default_factory=lambda: SCALE.pick(smoke=40, full=200))
    cw_initial_const: float = 0.1
    failure_examples: int = 4  # per taxonomy group
    # FULL: the models and how they are fine-tuned (Week 3's finetune).
    vit_model: str = "vit_base_patch16_224.augreg2_in21k_ft_in1k"
    cnn_model: str = "resnet50.a1_in1k"
    image_size: int = field(default_factory=lambda: SCALE.pick(smoke=64, full=224))
    epochs: int = 3
    batch_size: int = 64
    vit_lr: float = 1e-4
    cnn_lr: float = 5e-4
    test_images: int = field(default_factory=lambda: SCALE.pick(smoke=256, full=1000))  # held in memory (real data)

    def for_stage(self, stage: str) -> dict[str, Any]:
        """The settings a stage depends on (all of them but the ones that only size other stages would do;
        keeping all is simple and safe)."""
        return {k: v for k, v in asdict(self).items()}


def load_config(path: Path) -> dict[str, Any]:
    """A TOML file of Settings fields (``experiments/*.toml``); unknown keys are an error that names them."""
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SystemExit(f"{path}: unknown settings {unknown}; known: {sorted(known)}")
    if "epsilons" in data:
        data["epsilons"] = tuple(float(e) for e in data["epsilons"])
    return data


# ---------------------------------------------------------------------------- outputs and tracking
def _plain(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


class Tracker:
    """TensorBoard always (``<out>/tensorboard``), Weights & Biases too when asked (``<out>/wandb``)."""

    def __init__(self, out: Path, settings: Settings, use_wandb: bool) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.wandb = None
        if use_wandb:
            folder = out / "wandb"
            folder.mkdir(parents=True, exist_ok=True)
            # wandb keeps settings, a cache and staging files in the home folder and TMPDIR by default: here,
            # everything stays in the run's folder.
            for var, sub in (("WANDB_DIR", ""), ("WANDB_CACHE_DIR", "cache"), ("WANDB_CONFIG_DIR", "config"),
                             ("WANDB_DATA_DIR", "data"), ("WANDB_ARTIFACT_DIR", "artifacts")):
                os.environ.setdefault(var, str(folder / sub))
            os.environ.setdefault("WANDB_SILENT", "true")
            import wandb

            self.wandb = wandb.init(project="attention-archaeology", name=out.name, dir=str(folder),
                                    config=_plain(asdict(settings)), resume="allow",
                                    id=f"{out.name}-{settings.dataset}"[:60].replace("/", "-"))
        self.writer = SummaryWriter(str(out / "tensorboard"))

    def scalars(self, prefix: str, values: dict[str, float], step: int = 0) -> None:
        for key, value in values.items():
            self.writer.add_scalar(f"{prefix}/{key}", value, step)
        if self.wandb is not None:
            self.wandb.log({f"{prefix}/{k}": v for k, v in values.items()})

    def figure(self, name: str, fig: Any) -> None:
        self.writer.add_figure(name, fig, close=False)
        if self.wandb is not None:
            import wandb

            self.wandb.log({f"figures/{name}": wandb.Image(fig)})

    def table(self, name: str, rows: list[dict[str, Any]]) -> None:
        if self.wandb is not None and rows:
            import wandb

            columns = list(rows[0])
            self.wandb.log({f"tables/{name}": wandb.Table(columns=columns, data=[[_plain(r[c]) for c in columns]
                                                                                 for r in rows])})

    def close(self) -> None:
        self.writer.close()
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None


@dataclass
class Stage:
    """What one stage produced: written to ``done.json`` and read back on resume."""

    name: str
    fingerprint: str
    seconds: float = 0.0
    figures: dict[str, list[str]] = field(default_factory=dict)  # name -> files, relative to the run folder
    tables: dict[str, str] = field(default_factory=dict)  # name -> CSV file
    numbers: dict[str, Any] = field(default_factory=dict)  # what the summary and the report quote


# ---------------------------------------------------------------------------- the run
class Excavation:
    """One run of the pipeline in one folder: the data, the models, the toolkit, the stages' outputs."""

    def __init__(self, out: Path, settings: Settings, *, device: str | None = None, use_wandb: bool = False,
                 progress: bool = True, kit: Toolkit | None = None) -> None:
        self.out = Path(out)
        self.settings = settings
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.progress = progress
        self.kit = kit or Toolkit()
        self.use_wandb = use_wandb
        self.tracker: Tracker | None = None
        self._data: dict[str, Any] | None = None
        self._subjects: tuple[Subject, Subject] | None = None
        self.current: Stage | None = None

    # -- data and models
    @property
    def data(self) -> dict[str, Any]:
        """The test images the analysis uses: images (N, C, H, W) in [0, 1], labels (N,), classes, masks or None."""
        if self._data is None:
            self._data = load_test_data(self.settings)
        return self._data

    @property
    def subjects(self) -> tuple[Subject, Subject]:
        if self._subjects is None:
            if self.settings.dataset == "shapes":
                vit, cnn = shapes_subjects()
            else:
                vit, cnn = load_finetuned(self.out / "stages" / "models", self.settings, self.data["classes"])
            self._subjects = (vit.to(self.device), cnn.to(self.device))
        return self._subjects

    def sample(self, n: int, offset: int = 0) -> Tensor:
        """n test-image indices, the classes taking turns (deterministic)."""
        labels = self.data["labels"]
        per_class = [torch.nonzero(labels == k).flatten() for k in range(len(self.data["classes"]))]
        order = [int(ix[i]) for i in range(max(len(ix) for ix in per_class)) for ix in per_class if i < len(ix)]
        return torch.tensor(order[offset:offset + n], dtype=torch.long)

    def images(self, index: Tensor) -> tuple[Tensor, Tensor]:
        return self.data["images"][index].to(self.device), self.data["labels"][index].to(self.device)

    def batches(self, index: Tensor, size: int):
        for start in range(0, len(index), size):
            yield index[start:start + size]

    # -- outputs
    def figure(self, name: str, fig: Any, part: int | None = None) -> None:
        import matplotlib.pyplot as plt

        folder = self.out / "figures"
        folder.mkdir(parents=True, exist_ok=True)
        file = folder / (f"{name}.png" if part is None else f"{name}_{part:02d}.png")
        fig.savefig(file, dpi=110, bbox_inches="tight")
        if self.tracker is not None:
            self.tracker.figure(file.stem, fig)
        plt.close(fig)
        self.current.figures.setdefault(name, []).append(str(file.relative_to(self.out)))

    def table(self, name: str, rows: list[dict[str, Any]], title: str) -> None:
        folder = self.out / "tables"
        folder.mkdir(parents=True, exist_ok=True)
        columns = list(rows[0]) if rows else []
        with open(folder / f"{name}.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows({k: _plain(v) for k, v in row.items()} for row in rows)
        lines = [f"**{title}**", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(_cell(row[c]) for c in columns) + " |" for row in rows]
        (folder / f"{name}.md").write_text("\n".join(lines) + "\n")
        if self.tracker is not None:
            self.tracker.table(name, rows)
        self.current.tables[name] = f"tables/{name}.csv"

    def save(self, name: str, **tensors: Tensor) -> None:
        torch.save({k: v.detach().cpu() for k, v in tensors.items()}, self.stage_dir(self.current.name) / f"{name}.pt")

    def load(self, stage: str, name: str) -> dict[str, Tensor]:
        return torch.load(self.stage_dir(stage) / f"{name}.pt", map_location="cpu", weights_only=True)

    def stage_dir(self, stage: str) -> Path:
        folder = self.out / "stages" / stage
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def done(self, stage: str) -> Stage | None:
        path = self.out / "stages" / stage / "done.json"
        if not path.is_file():
            return None
        try:
            return Stage(**json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError):
            return None  # unreadable: do the stage again

    # -- running
    def fingerprint(self, stage: str) -> str:
        import hashlib

        settings = json.dumps(_plain(self.settings.for_stage(stage)), sort_keys=True)
        code = self.kit.fingerprint(STAGE_PIECES[stage])
        return hashlib.sha256(f"{stage}|{SCALE.value}|{settings}|{code}".encode()).hexdigest()[:16]

    def run(self, stages: tuple[str, ...] = STAGES, redo: tuple[str, ...] = ()) -> dict[str, Stage]:
        results: dict[str, Stage] = {}
        bar = tqdm(stages, desc="excavation", unit="stage", disable=not self.progress)
        try:
            for name in bar:
                bar.set_postfix_str(name)
                fingerprint = self.fingerprint(name)
                previous = self.done(name)
                again = name in redo or "all" in redo
                if previous is not None and previous.fingerprint == fingerprint and not again:
                    tqdm.write(f"[{name}] done before ({previous.seconds:.1f} s then): skipped")
                    results[name] = previous
                    continue
                if previous is not None and previous.fingerprint != fingerprint:
                    tqdm.write(f"[{name}] made with other settings or other code before: doing it again")
                if self.tracker is None:
                    self.tracker = Tracker(self.out, self.settings, self.use_wandb)
                self.current = Stage(name, fingerprint)
                tick = time.perf_counter()
                STAGE_FUNCTIONS[name](self)
                self.current.seconds = round(time.perf_counter() - tick, 2)
                done = self.stage_dir(name) / "done.json"
                done.with_suffix(".tmp").write_text(json.dumps(_plain(asdict(self.current)), indent=1))
                os.replace(done.with_suffix(".tmp"), done)  # all at once: a reader never sees half of it
                tqdm.write(f"[{name}] {self.current.seconds:.1f} s: {len(self.current.figures)} figure(s), "
                           f"{len(self.current.tables)} table(s)")
                results[name] = self.current
        finally:
            bar.close()
            if self.tracker is not None:
                self.tracker.close()
                self.tracker = None
        return results


# ---------------------------------------------------------------------------- data and models
def load_test_data(settings: Settings) -> dict[str, Any]:
    """The test split the analysis runs on (in memory): the shape scenes with their masks, or the first
    ``test_images`` of a real dataset's test split (a fixed random subset)."""
    if settings.dataset == "shapes":
        from vitcourse.data import shape_scenes

        scenes = shape_scenes("test", seed=settings.seed)
        return {"images": scenes.images, "labels": scenes.labels, "classes": scenes.classes, "masks": scenes.masks,
                "note": f"the shape scenes (vitcourse.data.shape_scenes, seed {settings.seed}): {len(scenes)} test "
                        f"images, 3 x 32 x 32, {len(scenes.classes)} classes, with object masks; generated offline"}
    from vitcourse.data import load_dataset

    data = load_dataset(settings.dataset, None, settings.test_images, seed=settings.seed,
                        image_size=settings.image_size, verbose=False)
    pairs = [data.test[i] for i in range(len(data.test))]
    images = torch.stack([p[0] for p in pairs])
    labels = torch.stack([torch.as_tensor(p[1]) for p in pairs]).long().reshape(-1)
    return {"images": images, "labels": labels, "classes": tuple(data.classes), "masks": None, "note": data.note,
            "data": data}


def preflight(settings: Settings) -> list[str]:
    """Check, before any work, that what the run needs is here: at FULL the dataset and both pretrained
    models (a DataUnavailable or WeightsUnavailable names what is missing and the fix); returns the lines
    that describe the data and the models."""
    if settings.dataset not in DATASETS:
        raise SystemExit(f"--dataset {settings.dataset!r}: choose one of {', '.join(DATASETS)}")
    if settings.dataset == "shapes":
        return [f"Data: the Week 6 shape scenes (generated offline, 1,000 test images with object masks, "
                f"seed {settings.seed})",
                "Models: the course's shapes ViT (shipped weights, timm implementation) and shapes CNN (SMOKE "
                "models: small, trained on 6,000 scenes)"]
    from vitcourse.data import load_dataset
    from vitcourse.pretrained import load_timm

    require = SCALE is Scale.FULL
    data = load_dataset(settings.dataset, 8, 8, image_size=settings.image_size, require=require, verbose=False)
    lines = [data.note if data.note.startswith("Data:") else f"Data: {data.note}"]
    for name in (settings.vit_model, settings.cnn_model):
        _, info = load_timm(name, num_classes=len(data.classes), require=require)
        lines.append(f"Model: {info.note}")
    return lines


def load_finetuned(folder: Path, settings: Settings, classes: tuple[str, ...]) -> tuple[Subject, Subject]:
    """The ViT and CNN the ``models`` stage fine-tuned (their state dicts in the stage folder)."""
    import timm

    subjects = []
    for name, arch in (("vit", settings.vit_model), ("cnn", settings.cnn_model)):
        saved = torch.load(folder / f"{name}.pt", map_location="cpu", weights_only=True)
        model = timm.create_model(saved["architecture"], pretrained=False, num_classes=len(classes),
                                  **saved.get("kwargs", {}))
        model.load_state_dict(saved["state_dict"])
        model.pretrained_cfg = dict(saved["pretrained_cfg"])
        subjects.append(timm_subject(arch, model, classes, saved["note"]))
    return subjects[0], subjects[1]


def stage_models(run: Excavation) -> None:
    """SMOKE: the shapes models as they are. Other datasets: fine-tune both with Week 3's ``finetune`` (FULL:
    pretrained ViT-B/16 and ResNet-50; SMOKE: small random-init stand-ins, numbers meaningless)."""
    s = run.settings
    if s.dataset != "shapes":
        from timm.models import model_entrypoint

        from vitcourse.data import load_dataset
        from vitcourse.models import finetune_model
        from vitcourse.pretrained import TIMM_SMALL
        from vitcourse.train import FinetuneConfig, finetune

        data = load_dataset(s.dataset, SCALE.pick(smoke=512, full=None), SCALE.pick(smoke=256, full=None), seed=s.seed,
                            image_size=s.image_size)
        for name, model_name, lr in (("vit", s.vit_model, s.vit_lr), ("cnn", s.cnn_model, s.cnn_lr)):
            size = s.image_size if name == "vit" else None  # a CNN takes any size; a ViT's grid is built for one
            model, note = finetune_model(model_name, len(data.classes), size)
            kwargs: dict[str, Any] = {}  # what rebuilds the same model: nothing at FULL, the stand-in's sizes at SMOKE
            if SCALE is Scale.SMOKE:
                family = model_entrypoint(model_name.split(".")[0]).__module__.rsplit(".", 1)[-1]
                kwargs = {**TIMM_SMALL.get(family, {}), **({"img_size": size} if size else {})}
            config = FinetuneConfig("full", model_name, s.dataset, epochs=s.epochs, batch_size=s.batch_size, lr=lr,
                                    image_size=s.image_size)
            result = finetune(config, device=str(run.device), out_dir=run.out / "models" / name, seed=s.seed,
                              progress=run.progress, data=data, model=model)
            model = result.model.cpu()
            torch.save({"architecture": model_name.split(".")[0], "state_dict": model.state_dict(),
                        "pretrained_cfg": dict(getattr(model, "pretrained_cfg", {}) or {}), "kwargs": kwargs,
                        "note": f"{note} Fine-tuned on {s.dataset} by the models stage ({s.epochs} epochs, lr {lr}).",
                        "history": json.dumps(result.history)},
                       run.stage_dir("models") / f"{name}.pt")
            run.current.numbers[f"{name}_finetune_test_accuracy"] = result.test_acc
    vit, cnn = run.subjects
    images, labels = run.data["images"], run.data["labels"]
    rows = []
    for subject in (vit, cnn):
        predictions, probabilities = subject.predict(images)
        run.save(f"{subject.name}_predictions", predictions=predictions, probabilities=probabilities)
        accuracy = float((predictions == labels).float().mean())
        run.current.numbers[f"{subject.name}_accuracy"] = accuracy
        params = sum(p.numel() for p in subject.raw.parameters())
        rows.append({"model": subject.title, "parameters": params, "test images": len(labels), "accuracy": accuracy,
                     "meets 85 %": "yes" if accuracy > 0.85 else "no", "where from": subject.note})
    run.table("accuracy", rows, f"Test accuracy on {len(labels)} images ({run.settings.dataset}, {SCALE.value})")
    run.tracker.scalars("accuracy", {r["model"]: r["accuracy"] for r in rows})


# ---------------------------------------------------------------------------- attention
def _show(ax: Any, image: Tensor, title: str = "", heat: Tensor | None = None, fontsize: int = 7) -> None:
    picture = image.detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy()
    ax.imshow(picture)
    if heat is not None:
        ax.imshow(heat.detach().cpu().numpy(), cmap="inferno", alpha=0.6, interpolation="bilinear",
                  extent=(-0.5, picture.shape[1] - 0.5, picture.shape[0] - 0.5, -0.5))
    ax.set_title(title, fontsize=fontsize)
    ax.axis("off")


def stage_attention(run: Excavation) -> None:
    import matplotlib.pyplot as plt

    vit, _ = run.subjects
    s = run.settings
    names = run.data["classes"]
    size = tuple(run.data["images"].shape[-2:])
    # The progression: each block's CLS attention (mean over heads) for 20+ images.
    index = run.sample(s.progression_images)
    images, labels = run.images(index)
    logits, attention = attention_stack(run.kit, vit, images)  # (L, B, nH, T, T)
    cls = cls_maps(run.kit, vit, attention).mean(dim=2)  # (L, B, h, w)
    depth = attention.shape[0]
    fig, axes = plt.subplots(len(index), depth + 1, figsize=(1.3 * (depth + 1), 1.35 * len(index)), squeeze=False,
                             layout="constrained")
    for row in range(len(index)):
        _show(axes[row, 0], images[row].cpu(), f"{names[labels[row]]}", fontsize=6)
        for layer in range(depth):
            _show(axes[row, layer + 1], images[row].cpu(), f"block {layer + 1}" if row == 0 else "",
                  heat=upsample(cls[layer, row][None], size)[0], fontsize=6)
    fig.suptitle("CLS attention, mean over heads, block 1 to L", fontsize=9)
    run.figure("attention_progression", fig)
    # Every head of every block on one image.
    heads = attention.shape[2]
    per_head = cls_maps(run.kit, vit, attention)[:, 0]  # (L, nH, h, w)
    fig, axes = plt.subplots(depth, heads, figsize=(1.25 * heads, 1.3 * depth), squeeze=False, layout="constrained")
    for layer in range(depth):
        for head in range(heads):
            _show(axes[layer, head], images[0].cpu(), f"L{layer + 1} H{head + 1}",
                  heat=upsample(per_head[layer, head][None], size)[0], fontsize=6)
    fig.suptitle(f"Every head's CLS attention on one {names[labels[0]]}", fontsize=9)
    run.figure("heads_gallery", fig)
    # Statistics per head over more images.
    totals: dict[str, Tensor] = {}
    stats_index = run.sample(s.stats_images)
    batch = SCALE.pick(smoke=100, full=16)
    for part in tqdm(list(run.batches(stats_index, batch)), desc="head statistics", disable=not run.progress,
                     leave=False):
        _, attention = attention_stack(run.kit, vit, run.images(part)[0])
        stats = run.kit("head_statistics")(attention, vit.grid_size, vit.patch_size, vit.num_prefix_tokens)
        for key, value in stats.items():
            totals[key] = totals.get(key, 0) + value.cpu() * len(part)
    stats = {key: value / len(stats_index) for key, value in totals.items()}  # each (L, nH)
    run.save("head_statistics", **stats)
    rows = [{"block": layer + 1,
             **{f"{key} (mean over heads)": float(stats[key][layer].mean()) for key in stats},
             "distance, lowest head": float(stats["distance"][layer].min()),
             "distance, highest head": float(stats["distance"][layer].max())} for layer in range(depth)]
    run.table("attention_by_layer", rows, f"Attention statistics by block, {len(stats_index)} test images "
              "(distance in pixels; entropy in nats)")
    fig, axes = plt.subplots(1, 4, figsize=(13, 2.8), layout="constrained")
    blocks = torch.arange(1, depth + 1)
    for ax, (key, label) in zip(axes, (("distance", "mean attention distance (px)"), ("entropy", "entropy (nats)"),
                                       ("cls", "attention to CLS"), ("sparsity", "sparsity (Gini)"))):
        for head in range(heads):
            ax.plot(blocks, stats[key][:, head], "o", ms=3, color="grey", alpha=0.6)
        ax.plot(blocks, stats[key].mean(dim=1), "-", color="C3", label="mean over heads")
        ax.set(xlabel="block", title=label)
    axes[0].legend(fontsize=7)
    run.figure("attention_by_layer", fig)
    distance = stats["distance"].mean(dim=1)  # (L,): over the heads
    run.current.numbers.update({"blocks": depth, "heads": heads, "first_block_distance": float(distance[0]),
                                "last_block_distance": float(distance[-1])})
    run.tracker.scalars("attention", {f"distance_block{i + 1}": float(distance[i]) for i in range(depth)})


# ---------------------------------------------------------------------------- explanations
def patch_grid(maps: Tensor, grid: tuple[int, int]) -> Tensor:
    """Pixel maps (B, H, W) averaged over each patch: (B, h, w), to score them on the ViT's grid."""
    return torch.nn.functional.adaptive_avg_pool2d(maps[:, None], grid)[:, 0]


def explain(run: Excavation, images: Tensor) -> dict[str, Tensor]:
    """The three maps on ``images``: ViT rollout and gradient-weighted attention (B, h, w), CNN Grad-CAM (B, H, W);
    each explains the model's own prediction."""
    vit, cnn = run.subjects
    _, attention = attention_stack(run.kit, vit, images)
    return {"rollout": rollout_maps(run.kit, vit, attention).cpu(),
            "gradient": gradient_maps(run.kit, vit, images).cpu(),
            "gradcam": gradcam_maps(run.kit, cnn, images).cpu()}


def stage_explanations(run: Excavation) -> None:
    import matplotlib.pyplot as plt

    vit, cnn = run.subjects
    s = run.settings
    names = run.data["classes"]
    size = tuple(run.data["images"].shape[-2:])
    vit_pred = run.load("models", "vit_predictions")["predictions"]
    cnn_pred = run.load("models", "cnn_predictions")["predictions"]
    index = run.sample(s.panels, offset=s.progression_images)
    per_figure = 12
    titles = ("input", "ViT rollout", "ViT gradient-weighted", "CNN Grad-CAM")
    for part, chunk in enumerate(run.batches(index, per_figure), start=1):
        images, labels = run.images(chunk)
        maps = explain(run, images)
        fig, axes = plt.subplots(len(chunk), 4, figsize=(6.4, 1.6 * len(chunk)), squeeze=False, layout="constrained")
        for row, i in enumerate(chunk.tolist()):
            verdict = (f"{names[labels[row]]}: ViT {names[vit_pred[i]]}, CNN {names[cnn_pred[i]]}")
            _show(axes[row, 0], images[row].cpu(), verdict, fontsize=6)
            for col, key in enumerate(("rollout", "gradient", "gradcam"), start=1):
                heat = maps[key][row] if key == "gradcam" else upsample(maps[key][row][None], size)[0]
                _show(axes[row, col], images[row].cpu(), titles[col] if row == 0 else "", heat=heat, fontsize=7)
        fig.suptitle("Input | ViT attention rollout | ViT gradient-weighted attention | CNN Grad-CAM", fontsize=8)
        run.figure("comparisons", fig, part=part)
    run.current.numbers["comparisons"] = len(index)
    if run.data["masks"] is None:
        run.current.numbers["faithfulness"] = "no object masks in this dataset"
        return
    # How much of each map lies on the object (the scenes come with masks): Task 6.6's measures.
    from vitcourse.data import patch_fraction

    index = run.sample(s.stats_images)
    scores: dict[str, list[Tensor]] = {}
    for chunk in tqdm(list(run.batches(index, 100)), desc="maps on the object", disable=not run.progress, leave=False):
        images, _ = run.images(chunk)
        maps = explain(run, images)
        truth = patch_fraction(run.data["masks"][chunk], vit.patch_size)  # (b, h, w)
        grid = {"ViT rollout": maps["rollout"], "ViT gradient-weighted": maps["gradient"],
                "CNN Grad-CAM": patch_grid(maps["gradcam"], vit.grid_size)}
        for method, relevance in grid.items():
            scores.setdefault(f"{method}|pointing", []).append(run.kit("pointing_game")(relevance, truth).float())
            scores.setdefault(f"{method}|mass", []).append(run.kit("mass_inside")(relevance, truth).float())
    area = float(patch_fraction(run.data["masks"][index], vit.patch_size).ge(0.5).float().mean())
    rows = []
    for method in ("ViT rollout", "ViT gradient-weighted", "CNN Grad-CAM"):
        pointing = float(torch.cat(scores[f"{method}|pointing"]).mean())
        mass = float(torch.cat(scores[f"{method}|mass"]).mean())
        rows.append({"method": method, "pointing game": pointing, "mass inside the object": mass,
                     "object's share of the patches": area})
        run.current.numbers[f"mass_inside/{method}"] = mass
    run.table("explanations", rows, f"Where the maps point, {len(index)} test scenes (pointing game: the top patch "
              "on the object; mass: the share of the map on object patches; chance = the object's share)")


# ---------------------------------------------------------------------------- heads
def head_roles(stats: dict[str, Tensor]) -> list[str]:
    """A one-word description of each head (row-major over blocks and heads), a convention of this course:
    the statistic that sets it most apart from the other heads (z-score beyond 1), or "typical"."""
    labels = {"distance": ("local", "long-range"), "entropy": ("focused", "diffuse"),
              "cls": ("avoids CLS", "reads CLS"), "sparsity": ("even", "sparse")}
    zs = {k: ((v - v.mean()) / v.std().clamp_min(1e-12)).flatten() for k, v in stats.items() if k in labels}
    roles = []
    for i in range(len(next(iter(zs.values())))):
        key = max(zs, key=lambda k: abs(float(zs[k][i])))
        z = float(zs[key][i])
        roles.append(labels[key][z > 0] if abs(z) > 1 else "typical")
    return roles


def stage_heads(run: Excavation) -> None:
    import matplotlib.pyplot as plt

    vit, _ = run.subjects
    index = run.sample(run.settings.ablation_images)
    images, labels = run.images(index)
    result = run.kit("head_importance")(vit.raw, vit.normalize(images), labels, progress=run.progress)
    delta_loss, delta_acc = result["delta_loss"].cpu(), result["delta_accuracy"].cpu()
    run.save("importance", delta_loss=delta_loss, delta_accuracy=delta_acc)
    stats = run.load("attention", "head_statistics")
    depth, heads = delta_loss.shape
    roles = head_roles(stats)
    ranking = [tuple(int(v) for v in pair) for pair in result["ranking"]]
    rank_of = {pair: r + 1 for r, pair in enumerate(ranking)}
    rows = []
    for layer in range(depth):
        for head in range(heads):
            rows.append({"block": layer + 1, "head": head + 1, "importance rank": rank_of[(layer, head)],
                         "loss increase": float(delta_loss[layer, head]),
                         "accuracy change": float(delta_acc[layer, head]),
                         **{key: float(stats[key][layer, head]) for key in ("distance", "entropy", "cls", "sparsity")},
                         "pattern": roles[layer * heads + head]})
    run.table("head_specialisation", rows, f"Head specialisation matrix: every one of the {depth * heads} heads "
              f"(statistics on {run.settings.stats_images} images, ablation on {len(index)}; 'pattern' is the course's "
              "convention: the statistic that sets the head apart, z > 1)")
    ranked = sorted(rows, key=lambda r: r["importance rank"])
    run.table("head_ranking", [{k: r[k] for k in ("importance rank", "block", "head", "loss increase",
                                                   "accuracy change", "pattern")} for r in ranked],
              f"Head importance by ablation: each head zeroed alone, {len(index)} test images (intact loss "
              f"{result['loss']:.4f}, accuracy {result['accuracy']:.4f})")
    fig, axes = plt.subplots(1, 5, figsize=(15, 0.9 + 0.45 * depth), layout="constrained")
    panels = (("loss increase when ablated", delta_loss), ("distance (px)", stats["distance"]),
              ("entropy (nats)", stats["entropy"]), ("attention to CLS", stats["cls"]), ("sparsity", stats["sparsity"]))
    for ax, (title, values) in zip(axes, panels):
        image = ax.imshow(values.numpy(), cmap="viridis", aspect="auto")
        ax.set(title=title, xlabel="head", ylabel="block", xticks=range(heads), yticks=range(depth),
               xticklabels=range(1, heads + 1), yticklabels=range(1, depth + 1))
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.suptitle("Head specialisation matrix", fontsize=10)
    run.figure("head_specialisation", fig)
    top = ranking[0]
    run.current.numbers.update({"heads_ranked": len(ranking), "intact_loss": result["loss"],
                                "intact_accuracy": result["accuracy"], "most_important_head": [top[0] + 1, top[1] + 1],
                                "largest_loss_increase": float(delta_loss[top])})
    run.tracker.scalars("heads", {"largest_loss_increase": float(delta_loss[top])})


# ---------------------------------------------------------------------------- robustness
def cw_distances(run: Excavation, subject: Subject, images: Tensor, labels: Tensor) -> Tensor:
    """Per image, the L2 norm of the smallest adversarial perturbation C&W found (Task 8.1): 0 where the clean
    image is already wrong, inf where the attack found none."""
    s = run.settings
    attack = run.kit("carlini_wagner_l2")
    norms = []
    for chunk in tqdm(list(run.batches(torch.arange(len(labels)), 32)), desc=f"C&W on the {subject.name}",
                      disable=not run.progress, leave=False):
        x, y = images[chunk], labels[chunk]
        adversarial = attack(subject.pixel, x, y, initial_const=s.cw_initial_const,
                             binary_search_steps=s.cw_search_steps, steps=s.cw_steps)
        with torch.no_grad():
            clean_right = subject.pixel(x).argmax(dim=1) == y
            fooled = subject.pixel(adversarial).argmax(dim=1) != y
        norm = (adversarial - x).flatten(1).norm(dim=1)
        norm = torch.where(clean_right, torch.where(fooled, norm, torch.full_like(norm, float("inf"))),
                           torch.zeros_like(norm))
        norms.append(norm.cpu())
    return torch.cat(norms)


def _unless_zero(attack: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """The attack, except at eps = 0, where the images are their own adversarial versions (no gradient steps)."""
    def attack_or_not(model: Any, images: Tensor, labels: Tensor, eps: float, **kwargs: Any) -> Tensor:
        return images if eps == 0 else attack(model, images, labels, eps, **kwargs)
    return attack_or_not


def stage_robustness(run: Excavation) -> None:
    import matplotlib.pyplot as plt

    s = run.settings
    index = run.sample(s.attack_images)
    images, labels = run.images(index)
    epsilons = list(s.epsilons)
    generator = torch.Generator(device=run.device).manual_seed(s.seed)
    attacks = {"FGSM": _unless_zero(run.kit("fgsm")),
               "PGD": _unless_zero(partial(run.kit("pgd"), steps=s.pgd_steps, generator=generator))}
    curve, area = run.kit("robustness_curve"), run.kit("curve_area")
    rows, curves = [], {}
    for subject in run.subjects:
        for attack_name, attack in attacks.items():
            accuracy = curve(subject.pixel, images, labels, epsilons, attack, progress=run.progress).cpu()
            curves[(subject.name, attack_name)] = accuracy
            for eps, acc in zip(epsilons, accuracy.tolist()):
                rows.append({"model": subject.title, "attack": attack_name, "budget": f"Linf {eps * 255:g}/255",
                             "accuracy": acc})
            run.current.numbers[f"{subject.name}/{attack_name}/area"] = area(epsilons, accuracy)
    # C&W: one minimal perturbation per image gives the whole accuracy-vs-L2 curve.
    scale = math.sqrt(images[0].numel() / 3072)  # budgets for 3 x 32 x 32, scaled with the image's size
    budgets = [b * scale for b in (0.0, 0.1, 0.2, 0.3, 0.5, 1.0)]
    cw_index = torch.arange(min(s.cw_images, len(labels)))
    for subject in run.subjects:
        norms = cw_distances(run, subject, images[cw_index], labels[cw_index])
        accuracy = torch.tensor([float((norms > b).float().mean()) for b in budgets])
        curves[(subject.name, "C&W")] = accuracy
        finite = norms[torch.isfinite(norms) & (norms > 0)]
        run.current.numbers[f"{subject.name}/C&W/median_l2"] = float(finite.median()) if len(finite) else float("nan")
        run.current.numbers[f"{subject.name}/C&W/found"] = float(torch.isfinite(norms).float().mean())
        for b, acc in zip(budgets, accuracy.tolist()):
            rows.append({"model": subject.title, "attack": "C&W", "budget": f"L2 {b:.2f}", "accuracy": acc})
        run.save(f"cw_{subject.name}", norms=norms)
    run.table("robustness", rows, f"Accuracy under attack: FGSM and PGD ({s.pgd_steps} steps) on {len(labels)} test "
              f"images; C&W L2 (search {s.cw_search_steps} x {s.cw_steps} Adam steps) on {len(cw_index)}")
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2), layout="constrained")
    for ax, attack_name in zip(axes, ("FGSM", "PGD", "C&W")):
        x = budgets if attack_name == "C&W" else [e * 255 for e in epsilons]
        for subject in run.subjects:
            ax.plot(x, curves[(subject.name, attack_name)], "o-", label=subject.title)
        ax.set(xlabel="L2 budget" if attack_name == "C&W" else "L-inf budget (x/255)", ylabel="accuracy",
               title=attack_name, ylim=(-0.02, 1.02))
        ax.legend(fontsize=7)
    run.figure("robustness_curves", fig)
    run.tracker.scalars("robustness", {k: v for k, v in run.current.numbers.items() if isinstance(v, float)
                                       and math.isfinite(v)})


# ---------------------------------------------------------------------------- attention under attack
def _similarity(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation of two stacks of maps, per image: (B,)."""
    a, b = a.flatten(1), b.flatten(1)
    a, b = a - a.mean(dim=1, keepdim=True), b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)


def _on_object(maps: Tensor, masks: Tensor) -> float:
    """The mean share of each pixel map (B, H, W) that lies on its object (pixel masks (B, H, W) in [0, 1])."""
    return float(((maps * masks).flatten(1).sum(1) / maps.flatten(1).sum(1).clamp_min(1e-12)).mean())


def stage_adversarial(run: Excavation) -> None:
    import matplotlib.pyplot as plt

    s = run.settings
    vit, cnn = run.subjects
    names = run.data["classes"]
    size = tuple(run.data["images"].shape[-2:])
    pgd = run.kit("pgd")
    generator = torch.Generator(device=run.device).manual_seed(s.seed)

    def maps(subject: Subject, images: Tensor) -> Tensor:
        if subject.is_vit:
            _, attention = attention_stack(run.kit, subject, images)
            return upsample(rollout_maps(run.kit, subject, attention), size).cpu()
        return gradcam_maps(run.kit, subject, images).cpu()

    index = run.sample(min(s.attack_images, 100))
    images, labels = run.images(index)
    rows, shown = [], {}
    for subject in (vit, cnn):
        adversarial = pgd(subject.pixel, images, labels, s.show_eps, steps=s.pgd_steps, generator=generator)
        clean_maps, adv_maps = maps(subject, images), maps(subject, adversarial)
        with torch.no_grad():
            clean_pred = subject.pixel(images).argmax(dim=1).cpu()
            adv_pred = subject.pixel(adversarial).argmax(dim=1).cpu()
        row = {"model": subject.title, "map": "rollout" if subject.is_vit else "Grad-CAM",
               "attack": f"PGD Linf {s.show_eps * 255:g}/255", "images": len(index),
               "accuracy clean": float((clean_pred == labels.cpu()).float().mean()),
               "accuracy attacked": float((adv_pred == labels.cpu()).float().mean()),
               "map correlation clean vs attacked": float(_similarity(clean_maps, adv_maps).mean())}
        if run.data["masks"] is not None:
            masks = run.data["masks"][index]
            row.update({"map mass on the object, clean": _on_object(clean_maps, masks),
                        "map mass on the object, attacked": _on_object(adv_maps, masks)})
        rows.append(row)
        shown[subject.name] = (adversarial.cpu(), clean_maps, adv_maps, clean_pred, adv_pred)
        run.current.numbers[f"{subject.name}/map_correlation"] = row["map correlation clean vs attacked"]
    run.table("adversarial_attention", rows, "What the maps do under attack (each model attacked white-box; the map "
              "explains its own prediction)")
    count = min(8, len(index))
    fig, axes = plt.subplots(count, 6, figsize=(9.6, 1.6 * count), squeeze=False, layout="constrained")
    heads = ("clean", "ViT: attacked", "ViT rollout, clean", "ViT rollout, attacked", "CNN Grad-CAM, clean",
             "CNN Grad-CAM, attacked")
    for row in range(count):
        v_adv, v_clean, v_attacked, v_cp, v_ap = shown["vit"]
        _, c_clean, c_attacked, c_cp, c_ap = shown["cnn"]
        label = names[labels[row]]
        _show(axes[row, 0], images[row].cpu(), f"{label}" if row else f"{heads[0]}: {label}", fontsize=6)
        _show(axes[row, 1], v_adv[row], f"ViT says {names[v_ap[row]]}", fontsize=6)
        _show(axes[row, 2], images[row].cpu(), f"ViT {names[v_cp[row]]}", heat=v_clean[row], fontsize=6)
        _show(axes[row, 3], v_adv[row], f"ViT {names[v_ap[row]]}", heat=v_attacked[row], fontsize=6)
        _show(axes[row, 4], images[row].cpu(), f"CNN {names[c_cp[row]]}", heat=c_clean[row], fontsize=6)
        _show(axes[row, 5], shown["cnn"][0][row], f"CNN {names[c_ap[row]]}", heat=c_attacked[row], fontsize=6)
    fig.suptitle(f"PGD at {s.show_eps * 255:g}/255 on each model: " + " | ".join(heads), fontsize=7)
    run.figure("adversarial_attention", fig)


# ---------------------------------------------------------------------------- failures
def stage_taxonomy(run: Excavation) -> None:
    import matplotlib.pyplot as plt

    s = run.settings
    vit, cnn = run.subjects
    names = run.data["classes"]
    size = tuple(run.data["images"].shape[-2:])
    labels = run.data["labels"]
    vit_pred = run.load("models", "vit_predictions")["predictions"]
    cnn_pred = run.load("models", "cnn_predictions")["predictions"]
    groups = run.kit("error_taxonomy")(vit_pred, cnn_pred, labels)
    right = torch.nonzero((vit_pred == labels) & (cnn_pred == labels)).flatten()
    rows = []
    for key, index in [*((g, groups[g]) for g in TAXONOMY_GROUPS), ("both_right", right)]:
        index = torch.as_tensor(index).long()
        row = {"group": GROUP_TITLES.get(key, "both right"), "images": len(index),
               "share of the test set": len(index) / len(labels)}
        true_classes = torch.bincount(labels[index], minlength=len(names)) if len(index) else torch.zeros(len(names))
        row["most frequent true class"] = names[int(true_classes.argmax())] if len(index) else "-"
        if key == "both_wrong":
            row["same wrong class"] = len(groups.get("same_mistake", []))
        sample = index[:64]
        if len(sample):
            images = run.data["images"][sample].to(run.device)
            maps = explain(run, images)
            _, attention = attention_stack(run.kit, vit, images)
            last = attention[-1][:, :, 0, vit.num_prefix_tokens:]  # (b, nH, N): the CLS row of the last block
            last = last / last.sum(dim=-1, keepdim=True)
            row["ViT last-block CLS entropy"] = float(-(last * last.clamp_min(1e-12).log()).sum(-1).mean())
            if run.data["masks"] is not None:
                from vitcourse.data import patch_fraction

                truth = patch_fraction(run.data["masks"][sample], vit.patch_size)
                row["ViT rollout mass on the object"] = float(run.kit("mass_inside")(maps["rollout"], truth).mean())
                row["CNN Grad-CAM mass on the object"] = float(run.kit("mass_inside")(
                    patch_grid(maps["gradcam"], vit.grid_size), truth).mean())
                row["mean object area"] = float(run.data["masks"][sample].mean(dim=(1, 2)).mean())
        rows.append(row)
    columns = list(dict.fromkeys(k for r in rows for k in r))  # every key, in the order they first appear
    rows = [{c: r.get(c, "-") for c in columns} for r in rows]
    run.table("taxonomy", rows, f"Failure taxonomy on {len(labels)} test images (maps on up to 64 images per group)")
    run.current.numbers["taxonomy"] = {g: len(groups[g]) for g in TAXONOMY_GROUPS}
    # Significance (Task 8.2): accuracy intervals and McNemar on the same images.
    wilson, mcnemar = run.kit("wilson_interval"), run.kit("mcnemar_test")
    sig = []
    for subject, pred in ((vit, vit_pred), (cnn, cnn_pred)):
        correct = int((pred == labels).sum())
        low, high = wilson(correct, len(labels), 0.95)
        sig.append({"comparison": subject.title, "statistic": "accuracy", "value": correct / len(labels),
                    "95 % interval / p-value": f"[{low:.4f}, {high:.4f}] (Wilson)"})
    test = mcnemar(labels, vit_pred, cnn_pred)
    sig.append({"comparison": "ViT vs CNN", "statistic": f"McNemar: only ViT wrong b = {test['b']:.0f}, only CNN wrong "
                f"c = {test['c']:.0f}", "value": test["b"] - test["c"],
                "95 % interval / p-value": f"p = {test['p_value']:.4g} (exact, two-sided)"})
    run.table("significance", sig, f"Is the difference real? {len(labels)} test images")
    run.current.numbers.update({"mcnemar_p": test["p_value"], "mcnemar_b": test["b"], "mcnemar_c": test["c"]})
    # Examples of each group with their maps.
    shown = [(g, int(i)) for g in TAXONOMY_GROUPS for i in torch.as_tensor(groups[g])[:s.failure_examples]]
    if not shown:
        fig, ax = plt.subplots(figsize=(4, 1), layout="constrained")
        ax.text(0.5, 0.5, "no mistakes on the test set", ha="center")
        ax.axis("off")
        run.figure("failure_examples", fig)
        return
    index = torch.tensor([i for _, i in shown])
    images = run.data["images"][index].to(run.device)
    maps = explain(run, images)
    fig, axes = plt.subplots(len(shown), 4, figsize=(6.4, 1.6 * len(shown)), squeeze=False, layout="constrained")
    for row, (group, i) in enumerate(shown):
        title = f"{GROUP_TITLES[group]}: {names[labels[i]]}; ViT {names[vit_pred[i]]}, CNN {names[cnn_pred[i]]}"
        _show(axes[row, 0], images[row].cpu(), title, fontsize=5)
        _show(axes[row, 1], images[row].cpu(), "ViT rollout" if row == 0 else "",
              heat=upsample(maps["rollout"][row][None], size)[0])
        _show(axes[row, 2], images[row].cpu(), "ViT gradient-weighted" if row == 0 else "",
              heat=upsample(maps["gradient"][row][None], size)[0])
        _show(axes[row, 3], images[row].cpu(), "CNN Grad-CAM" if row == 0 else "", heat=maps["gradcam"][row])
    fig.suptitle("Failure taxonomy: examples of each group with their maps", fontsize=8)
    run.figure("failure_examples", fig)


# ---------------------------------------------------------------------------- summary
def stage_summary(run: Excavation) -> None:
    stages = {name: run.done(name) for name in STAGES if name != "summary"}
    missing = [name for name, stage in stages.items() if stage is None]
    summary = {"scale": SCALE.value, "dataset": run.settings.dataset, "data": run.data["note"],
               "models": {s.name: {"title": s.title, "note": s.note} for s in run.subjects},
               "settings": _plain(asdict(run.settings)), "code": run.kit.sources(),
               "stages": {name: {"seconds": st.seconds, "numbers": st.numbers, "figures": st.figures,
                                 "tables": st.tables} for name, st in stages.items() if st is not None},
               "missing_stages": missing}
    summary["figures"] = {k: v for st in stages.values() if st for k, v in st.figures.items()}
    summary["tables"] = {k: v for st in stages.values() if st for k, v in st.tables.items()}
    (run.out / "summary.json").write_text(json.dumps(_plain(summary), indent=1))
    lines = [f"# Attention Archaeology: {run.settings.dataset} at {SCALE.value.upper()} scale", "",
             f"Data: {run.data['note']}.", ""]
    lines += [f"- {s.title}: {s.note}" for s in run.subjects]
    lines += ["", "Code: " + ", ".join(f"{k} {v}" for k, v in sorted(run.kit.sources().items())), ""]
    for name in summary["tables"]:
        md = run.out / "tables" / f"{name}.md"
        if md.is_file():
            lines += [md.read_text(), ""]
    lines += ["Figures:", ""] + [f"- {k}: {', '.join(v)}" for k, v in summary["figures"].items()]
    (run.out / "summary.md").write_text("\n".join(lines) + "\n")
    run.current.numbers["missing_stages"] = missing


STAGE_FUNCTIONS: dict[str, Callable[[Excavation], None]] = {
    "models": stage_models, "attention": stage_attention, "explanations": stage_explanations, "heads": stage_heads,
    "robustness": stage_robustness, "adversarial": stage_adversarial, "taxonomy": stage_taxonomy,
    "summary": stage_summary,
}


# ---------------------------------------------------------------------------- the report's checks
def check_report(out: str | Path) -> list[str]:
    """What a complete run must hold for the report: every required figure and table (files present), a head
    ranking with every head exactly once, a taxonomy with all three groups. Returns the problems (none: [])."""
    out = Path(out)
    path = out / "summary.json"
    if not path.is_file():
        return [f"{path} is missing: run the excavation (python -m vitcourse.archaeology --out {out})"]
    summary = json.loads(path.read_text())
    problems = [f"stage {name} has not run" for name in summary.get("missing_stages", [])]
    for name in REQUIRED_FIGURES:
        files = summary["figures"].get(name, [])
        if not files or not all((out / f).is_file() for f in files):
            problems.append(f"figure {name} is missing")
    for name in REQUIRED_TABLES:
        file = summary["tables"].get(name)
        if not file or not (out / file).is_file():
            problems.append(f"table {name} is missing")
    ranking = out / "tables" / "head_ranking.csv"
    numbers = summary["stages"].get("attention", {}).get("numbers", {})
    if ranking.is_file() and numbers:
        with open(ranking) as fh:
            pairs = [(int(r["block"]), int(r["head"])) for r in csv.DictReader(fh)]
        every = {(b, h) for b in range(1, numbers["blocks"] + 1) for h in range(1, numbers["heads"] + 1)}
        if sorted(pairs) != sorted(every):
            problems.append(f"the head ranking lists {len(pairs)} heads ({len(set(pairs))} different); the ViT has "
                            f"{len(every)}")
    taxonomy = out / "tables" / "taxonomy.csv"
    if taxonomy.is_file():
        with open(taxonomy) as fh:
            groups = {r["group"] for r in csv.DictReader(fh)}
        absent = [GROUP_TITLES[g] for g in TAXONOMY_GROUPS if GROUP_TITLES[g] not in groups]
        if absent:
            problems.append(f"the taxonomy has no group {absent}")
    return problems


# ---------------------------------------------------------------------------- command line
def default_out(dataset: str) -> Path:
    """``runs/<dataset>-<scale>`` where you are; ``-reference`` at the end when ``vitcourse`` is the course's
    reference package (the instructor's notebook), so that a run of the reference never mixes with yours."""
    from vitcourse.toolkit import package_is_reference

    return Path("runs") / f"{dataset}-{SCALE.value}{'-reference' if package_is_reference() else ''}"


def excavate(out: str | Path | None = None, *, dataset: str | None = None, config: str | Path | None = None,
             stages: tuple[str, ...] = STAGES, redo: tuple[str, ...] = (), use_wandb: bool = False,
             progress: bool = True, device: str | None = None, quiet: bool = False, **overrides: Any) -> Path:
    """Run (or resume) the excavation into ``out``; returns the folder. What ``python -m vitcourse.archaeology``
    does; ``overrides`` set Settings fields (e.g. ``panels=12``)."""
    values = load_config(Path(config)) if config else {}
    if dataset:
        values["dataset"] = dataset
    values.update(overrides)
    settings = replace(Settings(), **values)
    out = Path(out) if out is not None else default_out(settings.dataset)
    say = (lambda *a: None) if quiet else print
    say(f"Attention Archaeology · Scale: {SCALE.value.upper()} · dataset: {settings.dataset} · output: {out}")
    for line in preflight(settings):
        say(line)
    kit = Toolkit()
    say("Code (yours when your task is done; else the course's reference where this copy has it):")
    for line in kit.report():
        say(line)
    tracking = "TensorBoard (" + str(out / "tensorboard") + ")" + (" and Weights & Biases" if use_wandb else "")
    say(f"Tracking: {tracking}. Stages done before with the same settings and code are skipped.")
    run = Excavation(out, settings, device=device, use_wandb=use_wandb, progress=progress, kit=kit)
    run.run(tuple(stages), tuple(redo))
    if "summary" in stages:
        problems = check_report(out)
        say(f"Report check: {'complete' if not problems else '; '.join(problems)}")
    else:
        say("Report check: the summary stage did not run (--stages), so the report is not checked")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vitcourse.archaeology", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=DATASETS, help="default: shapes at SMOKE, pathmnist at FULL")
    parser.add_argument("--out", type=Path, help="the run's folder (default: runs/<dataset>-<scale> here)")
    parser.add_argument("--config", type=Path, help="a TOML file of settings, e.g. experiments/pathmnist-full.toml")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, in order (default: all: "
                        f"{','.join(STAGES)})")
    parser.add_argument("--redo", default="", help="stages to do again even when done (or 'all')")
    parser.add_argument("--wandb", action="store_true", help="also log to Weights & Biases (WANDB_MODE=offline: no "
                        "network needed)")
    parser.add_argument("--device", choices=["cpu", "cuda"])
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    stages = tuple(s for s in args.stages.split(",") if s)
    unknown = [s for s in stages + tuple(r for r in args.redo.split(",") if r) if s not in STAGES + ("all",)]
    if unknown:
        parser.error(f"unknown stage(s) {unknown}; the stages are {', '.join(STAGES)}")
    from vitcourse.data import DataUnavailable
    from vitcourse.pretrained import WeightsUnavailable

    try:
        excavate(args.out, dataset=args.dataset, config=args.config, stages=stages,
                 redo=tuple(r for r in args.redo.split(",") if r), use_wandb=args.wandb,
                 progress=not args.no_progress, device=args.device)
    except (DataUnavailable, WeightsUnavailable) as exc:
        print(f"Stopped before any work: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
