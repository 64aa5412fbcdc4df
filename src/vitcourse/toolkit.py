"""The excavation's tools: which implementation of each Week 6-8 piece the project uses, the two models it
digs into, and the maps it draws (Week 8's pipeline, ``vitcourse.archaeology``, and its demo, ``vitcourse.demo``).

**Your code first.** Every piece (attention extraction, rollout, gradient-weighted attention, head statistics
and ablation, Grad-CAM, FGSM/PGD, robustness curves, the error taxonomy, Carlini-Wagner, McNemar and Wilson)
is taken from *your* ``vitcourse`` package when its task is done there (no stub of that task is left in its
module). A Week 6 or 7 piece you have not finished is taken from the course's reference solutions when this
copy of the course has them (the course repository: ``solutions/vitcourse/``, loaded under the name
``vitcourse_reference`` so that it never mixes with your package); in a student copy it stays your stub, and
the stage that needs it stops with that stub's message, which names the task. Week 8's own tasks (8.1, 8.2)
always come from your package: the project should show your attack and your statistics.
:meth:`Toolkit.report` says which is which.

**The models** (:func:`load_subjects`): at SMOKE scale on the shape scenes, the course's shapes ViT (its
shipped weights, in timm's ``VisionTransformer``) and the shapes CNN; with a real dataset, the models the
pipeline fine-tuned. Each is a :class:`Subject`: the model in pixel space (it takes images in [0, 1]), the
raw model and its normalisation, and what the maps need (patch grid, Grad-CAM layer).

Shapes: B images, C, H, W pixels, L blocks, nH heads, T tokens (CLS first), h, w the patch grid, K classes.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

REPOSITORY = Path(__file__).resolve().parents[2]
REFERENCE_DIR = REPOSITORY / "solutions" / "vitcourse"  # only in the course repository
ALIAS = "vitcourse_reference"


# ---------------------------------------------------------------------------- the pieces
@dataclass(frozen=True)
class Piece:
    name: str  # what the pipeline calls it
    module: str  # vitcourse.<module>
    attribute: str  # the function or class in it
    task: str  # "6.2"
    what: str  # for the report

    @property
    def week(self) -> int:
        return int(self.task.split(".")[0])


PIECES = {p.name: p for p in [
    Piece("attention_maps", "attention_maps", "attention_maps", "6.1", "attention at every layer and head"),
    Piece("attention_rollout", "rollout", "attention_rollout", "6.2", "attention rollout"),
    Piece("cls_relevance", "rollout", "cls_relevance", "6.2", "the CLS row as a map"),
    Piece("gradient_weighted_attention", "gradient_attention", "gradient_weighted_attention", "6.3",
          "gradient-weighted attention"),
    Piece("head_statistics", "head_stats", "head_statistics", "6.4", "distance, entropy, CLS share, sparsity"),
    Piece("head_importance", "ablation", "head_importance", "6.5", "head importance by ablation"),
    Piece("pointing_game", "faithfulness", "pointing_game", "6.6", "pointing game against the object mask"),
    Piece("mass_inside", "faithfulness", "mass_inside", "6.6", "relevance inside the object"),
    Piece("GradCAM", "gradcam", "GradCAM", "7.1", "Grad-CAM"),
    Piece("vit_reshape_transform", "gradcam", "vit_reshape_transform", "7.1", "Grad-CAM on ViT tokens"),
    Piece("fgsm", "attacks", "fgsm", "7.2", "FGSM"),
    Piece("pgd", "attacks", "pgd", "7.2", "PGD"),
    Piece("robustness_curve", "robustness", "robustness_curve", "7.3", "robustness curves"),
    Piece("curve_area", "robustness", "curve_area", "7.3", "the area under a robustness curve"),
    Piece("error_taxonomy", "errors", "error_taxonomy", "7.7", "the error taxonomy"),
    Piece("carlini_wagner_l2", "cw", "carlini_wagner_l2", "8.1", "Carlini-Wagner L2"),
    Piece("mcnemar_test", "significance", "mcnemar_test", "8.2", "McNemar's test"),
    Piece("wilson_interval", "significance", "wilson_interval", "8.2", "Wilson intervals"),
]}
OWN_WEEK = 8  # the week whose tasks always come from the student's package


class _ReferenceFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports ``solutions/vitcourse/<m>.py`` as ``vitcourse_reference.<m>``, its own imports of ``vitcourse``
    redirected to ``vitcourse_reference``: the reference stays whole even where the student's package is not."""

    IMPORT = re.compile(r"^(\s*)(from|import)\s+vitcourse\b", re.M)

    def __init__(self, root: Path) -> None:
        self.root = root

    def _file(self, fullname: str) -> Path | None:
        if fullname == ALIAS:
            return self.root / "__init__.py"
        if fullname.startswith(ALIAS + "."):
            path = self.root / (fullname.split(".", 1)[1].replace(".", "/") + ".py")
            return path if path.is_file() else None
        return None

    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        file = self._file(fullname)
        if file is None:
            return None
        package = fullname == ALIAS
        spec = importlib.util.spec_from_loader(fullname, self, origin=str(file), is_package=package)
        if package:
            spec.submodule_search_locations = [str(self.root)]
        return spec

    def create_module(self, spec):  # noqa: ANN001 - the default module
        return None

    def exec_module(self, module) -> None:  # noqa: ANN001
        file = self._file(module.__name__)
        module.__file__ = str(file)
        source = self.IMPORT.sub(rf"\1\2 {ALIAS}", file.read_text())
        exec(compile(source, str(file), "exec"), module.__dict__)  # noqa: S102 - the course's own reference


def package_is_reference() -> bool:
    """Whether ``vitcourse`` itself is the course's reference (the instructor's notebooks run that way)."""
    return Path(importlib.import_module("vitcourse").__file__).resolve().parent == REFERENCE_DIR.resolve()


def reference_available() -> bool:
    """Whether this copy of the course holds the reference solutions (the course repository does)."""
    return (REFERENCE_DIR / "__init__.py").is_file()


def _reference_module(module: str):
    if not any(isinstance(f, _ReferenceFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _ReferenceFinder(REFERENCE_DIR))
    return importlib.import_module(f"{ALIAS}.{module}")


def _stub_left(source: str, task: str) -> bool:
    """Whether a module's source still holds the stub of ``task`` (the generated NotImplementedError)."""
    return re.search(rf"NotImplementedError\(\s*['\"]Week \d+ · Task {re.escape(task)}:", source) is not None


def _missing(piece: Piece, why: str) -> Callable[..., Any]:
    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"{piece.what} (Task {piece.task}, vitcourse.{piece.module}.{piece.attribute}) is not "
                           f"available: {why}")
    return unavailable


@dataclass
class Choice:
    piece: Piece
    source: str  # "yours", "reference" or "missing"
    detail: str
    value: Any


class Toolkit:
    """The implementation of every piece, chosen once: ``kit = Toolkit(); kit("attention_rollout")(...)``."""

    def __init__(self, use_reference: bool | None = None) -> None:
        """``use_reference``: fall back to the course's reference for unfinished Week 6-7 pieces (None: when
        this copy of the course has it)."""
        self.use_reference = reference_available() if use_reference is None else use_reference
        self.choices: dict[str, Choice] = {}

    def choice(self, name: str) -> Choice:
        if name not in self.choices:
            self.choices[name] = self._choose(PIECES[name])
        return self.choices[name]

    def __call__(self, name: str) -> Any:
        return self.choice(name).value

    def _choose(self, piece: Piece) -> Choice:
        own: Any = None
        why = ""
        try:
            module = importlib.import_module(f"vitcourse.{piece.module}")
            own = getattr(module, piece.attribute)
            if _stub_left(inspect.getsource(module), piece.task):
                why = f"your Task {piece.task} is not done yet"
        except (ImportError, AttributeError, OSError) as exc:
            why = f"vitcourse.{piece.module} has no {piece.attribute} ({type(exc).__name__})"
        package = Path(importlib.import_module("vitcourse").__file__).resolve().parent
        if own is not None and not why:
            if package_is_reference():
                return Choice(piece, "reference", "the course's reference (solutions/ is the package here)", own)
            return Choice(piece, "yours", f"yours ({package.name}/{piece.module}.py)", own)
        if piece.week < OWN_WEEK and self.use_reference and (REFERENCE_DIR / f"{piece.module}.py").is_file():
            value = getattr(_reference_module(piece.module), piece.attribute)
            return Choice(piece, "reference", f"the course's reference ({why})", value)
        if own is not None:  # your stub: calling it raises its own message, which names the task
            return Choice(piece, "yours", f"yours, not done yet: its stub will stop the stage that needs it ({why})",
                          own)
        return Choice(piece, "missing", why, _missing(piece, why))

    def report(self, names: list[str] | None = None) -> list[str]:
        """One line per piece: the task, what it is, and whose code runs."""
        lines = []
        for name in names or list(PIECES):
            choice = self.choice(name)
            lines.append(f"  Task {choice.piece.task} {choice.piece.what:.<44} {choice.detail}")
        return lines

    def sources(self) -> dict[str, str]:
        """piece -> "yours" / "reference" / "missing", for the summary."""
        return {name: self.choice(name).source for name in PIECES}

    def fingerprint(self, names: list[str]) -> str:
        """A digest of the code behind ``names``: a stage reruns when the code it used changes."""
        import hashlib

        digest = hashlib.sha256()
        for name in sorted(names):
            choice = self.choice(name)
            digest.update(f"{name}:{choice.source}".encode())
            try:
                digest.update(inspect.getsource(inspect.getmodule(choice.value)).encode())
            except (OSError, TypeError):
                pass
        return digest.hexdigest()[:16]


# ---------------------------------------------------------------------------- the models
class PixelModel(nn.Module):
    """``model((images - mean) / std)``: the model in pixel space, images (B, C, H, W) in [0, 1] -> logits (B, K)."""

    def __init__(self, model: nn.Module, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1))

    def forward(self, images: Tensor) -> Tensor:
        return self.model((images - self.mean) / self.std)


@dataclass
class Subject:
    """One model under excavation."""

    name: str  # "vit" or "cnn"
    title: str  # "ViT (shapes-vit)"
    raw: nn.Module  # takes normalised images
    mean: Tensor  # (C,)
    std: Tensor  # (C,)
    classes: tuple[str, ...]
    note: str  # where it came from
    gradcam_layer: nn.Module
    patch_size: int | None = None
    grid_size: tuple[int, int] | None = None
    num_prefix_tokens: int = 1
    info: dict[str, Any] = field(default_factory=dict)
    pixel: PixelModel = field(init=False)

    def __post_init__(self) -> None:
        self.raw.eval()
        self.pixel = PixelModel(self.raw, self.mean, self.std).eval()

    @property
    def is_vit(self) -> bool:
        return self.patch_size is not None

    def normalize(self, images: Tensor) -> Tensor:
        """(B, C, H, W) in [0, 1] -> what ``raw`` takes."""
        return (images - self.pixel.mean) / self.pixel.std

    def to(self, device: torch.device | str) -> Subject:
        self.raw.to(device)
        self.pixel.to(device)
        return self

    @torch.no_grad()
    def predict(self, images: Tensor, batch_size: int = 256) -> tuple[Tensor, Tensor]:
        """(predictions (N,) int64, probabilities (N, K)) on images in [0, 1]."""
        device = self.pixel.mean.device
        probs = [self.pixel(images[i:i + batch_size].to(device)).softmax(dim=-1).cpu()
                 for i in range(0, len(images), batch_size)]
        probabilities = torch.cat(probs) if probs else torch.zeros(0, len(self.classes))
        return probabilities.argmax(dim=-1), probabilities


def shapes_subjects(verbose: bool = False) -> tuple[Subject, Subject]:
    """The SMOKE pair on the shape scenes: the shipped shapes ViT (timm's implementation, so it needs none of
    your Weeks 1-2 code) and the shapes CNN (the matched one whose weights ship, when this copy has it; else
    :func:`vitcourse.models.shapes_cnn`, trained once per machine)."""
    from vitcourse import models

    vit = models.shapes_vit(impl="timm", verbose=verbose)
    try:
        cnn = models.shipped_model("shapes-cnn-matched", verbose=verbose)  # Week 7's CNN, trained like the ViT
    except (AttributeError, ValueError, FileNotFoundError):
        cnn = models.shapes_cnn(verbose=verbose)
    vit_subject = Subject("vit", f"ViT ({vit.info['recipe']})", vit.model, vit.mean, vit.std, vit.classes, vit.note,
                          gradcam_layer=vit.model.blocks[-1].norm1, patch_size=vit.patch_size,
                          grid_size=vit.grid_size, info=dict(vit.info))
    last_stage = cnn.model.features[-1]
    cnn_subject = Subject("cnn", f"CNN ({cnn.info['recipe']})", cnn.model, cnn.mean, cnn.std, cnn.classes, cnn.note,
                          gradcam_layer=last_stage[0], info=dict(cnn.info))  # the last conv block, before pooling
    return vit_subject, cnn_subject


def timm_subject(name: str, model: nn.Module, classes: tuple[str, ...], note: str) -> Subject:
    """A fine-tuned timm ViT or CNN (the FULL pair: ViT-B/16 and ResNet-50) as a Subject."""
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    mean = torch.tensor(cfg.get("mean", (0.5, 0.5, 0.5)), dtype=torch.float32)
    std = torch.tensor(cfg.get("std", (0.5, 0.5, 0.5)), dtype=torch.float32)
    if hasattr(model, "blocks"):  # a ViT
        patch = model.patch_embed.patch_size[0]
        return Subject("vit", f"ViT ({cfg.get('architecture', name)})", model, mean, std, classes, note,
                       gradcam_layer=model.blocks[-1].norm1, patch_size=patch,
                       grid_size=tuple(model.patch_embed.grid_size),
                       num_prefix_tokens=getattr(model, "num_prefix_tokens", 1))
    layer = model.layer4[-1] if hasattr(model, "layer4") else list(model.children())[-3]
    return Subject("cnn", f"CNN ({cfg.get('architecture', name)})", model, mean, std, classes, note,
                   gradcam_layer=layer)


# ---------------------------------------------------------------------------- maps
def _unit(maps: Tensor) -> Tensor:
    """Each (h, w) map shifted and scaled to [0, 1] (a constant map becomes 0)."""
    flat = maps.flatten(1)
    low, high = flat.min(dim=1, keepdim=True).values, flat.max(dim=1, keepdim=True).values
    return ((flat - low) / (high - low).clamp_min(1e-12)).reshape(maps.shape)


def upsample(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """(B, h, w) -> (B, H, W), bilinear, for drawing over the image."""
    return F.interpolate(maps[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]


def attention_stack(kit: Toolkit, vit: Subject, images: Tensor) -> tuple[Tensor, Tensor]:
    """(logits (B, K), attention (L, B, nH, T, T)) of the ViT on images in [0, 1] (Task 6.1)."""
    return kit("attention_maps")(vit.raw, vit.normalize(images))


def cls_maps(kit: Toolkit, vit: Subject, attention: Tensor) -> Tensor:
    """Per block and head, the CLS token's attention over the patches: (L, B, nH, h, w)."""
    depth, batch, heads = attention.shape[:3]
    rows = attention[:, :, :, 0, vit.num_prefix_tokens:]  # (L, B, nH, N)
    return rows.reshape(depth, batch, heads, *vit.grid_size)


def rollout_maps(kit: Toolkit, vit: Subject, attention: Tensor) -> Tensor:
    """Attention rollout's CLS row as maps (B, h, w) (Task 6.2)."""
    relevance = kit("attention_rollout")(attention)  # (B, T, T)
    return kit("cls_relevance")(relevance, vit.grid_size, vit.num_prefix_tokens)


def gradient_maps(kit: Toolkit, vit: Subject, images: Tensor, targets: Tensor | None = None) -> Tensor:
    """Gradient-weighted attention for ``targets`` (None: the predicted classes) as maps (B, h, w) (Task 6.3)."""
    relevance, _ = kit("gradient_weighted_attention")(vit.raw, vit.normalize(images), targets)
    return kit("cls_relevance")(relevance, vit.grid_size, vit.num_prefix_tokens)


def gradcam_maps(kit: Toolkit, subject: Subject, images: Tensor, targets: Tensor | None = None) -> Tensor:
    """Grad-CAM of ``subject`` at its Grad-CAM layer for ``targets``: (B, H, W) in [0, 1] (Task 7.1)."""
    transform = None
    if subject.is_vit:
        transform = partial(kit("vit_reshape_transform"), num_prefix_tokens=subject.num_prefix_tokens,
                            grid_size=subject.grid_size)
    cam = kit("GradCAM")(subject.raw, subject.gradcam_layer, reshape_transform=transform)
    return cam(subject.normalize(images), targets)


def overlay(image: Tensor, heat: Tensor, alpha: float = 0.55) -> Tensor:
    """An RGB picture (H, W, 3) in [0, 1]: the image with a heat map (h, w) in [0, 1] over it (the 'inferno'
    colour map; no matplotlib needed, so the demo stays fast)."""
    stops = torch.tensor([[0.0, 0.0, 0.02], [0.34, 0.06, 0.43], [0.73, 0.21, 0.33], [0.98, 0.55, 0.04],
                          [0.99, 1.0, 0.64]])  # five colours of 'inferno'
    height, width = image.shape[-2:]
    heat = upsample(_unit(heat[None].float()), (height, width))[0].clamp(0, 1)  # (H, W)
    position = heat * (len(stops) - 1)
    low = position.floor().long().clamp(max=len(stops) - 2)
    frac = (position - low)[..., None]
    colour = stops[low] * (1 - frac) + stops[low + 1] * frac  # (H, W, 3)
    rgb = image.permute(1, 2, 0).float() if image.shape[0] == 3 else image[0][..., None].expand(-1, -1, 3).float()
    return ((1 - alpha) * rgb + alpha * colour).clamp(0, 1)
