"""Models the course defines (not exercises): the CNN teacher, the stand-in for fine-tuning, and the
Week 3 models that later weeks reuse.

* :class:`ConvNet`: a small VGG/ResNet-9-style CNN, the teacher for distillation (Week 3) and the CNN
  that Week 7 compares a ViT with.
* :func:`finetune_model`: the pretrained timm model to fine-tune, or at SMOKE scale a small
  random-init stand-in of it.
* :func:`save_week3_models` / :func:`load_week3_models`: the ViT trained from scratch on digits in
  the Week 3 notebook and its CNN teacher, saved under ``<cache>/03_training/`` so that Weeks 6 and 7
  can use trained models offline (their pictures then show structure, not noise).
* :func:`shapes_vit` / :func:`shapes_cnn`: the models of Weeks 6-8, trained by the course's command on
  the shape scenes (``vitcourse.data.shape_scenes``, which come with object masks). The ViT's weights
  ship with the course (``data/models/shapes-vit.pt``: loading them never trains); the CNN trains in
  ~20-30 s the first time it is asked for and is cached (``<cache>/models/shapes-cnn/``).
* :func:`mimetic_init`: the initialisation that lets the small ViT learn fast on 6,000 images.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vitcourse.data import cache_dir
from vitcourse.scale import SCALE, Scale

WEEK3_FOLDER = "03_training"
SHIPPED_MODELS = Path(__file__).resolve().parents[2] / "data" / "models"  # weights that ship with the course


class ConvNet(nn.Module):
    """A plain CNN: stages of conv3x3 -> BatchNorm -> GELU (optionally a residual pair of the same),
    then 2x2 max pooling; global average pooling and a linear head.

    Args:
        num_classes: K.
        in_chans: C.
        widths: channels of each stage; the feature map halves after every stage.
        residual: per stage, whether it adds a residual block (two more convolutions and a skip).
        stem_stride: the stride of the very first convolution (2 halves the resolution at once: cheap
            on small, upsampled images such as the digits).

    ``ConvNet(widths=(16, 32, 64))`` is the SMOKE teacher (three convolutions); ``widths=(64, 128, 256,
    512), residual=(False, True, False, True)`` is a ResNet-9-like CIFAR-10 teacher (FULL).
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 3, widths: tuple[int, ...] = (16, 32, 64),
                 residual: tuple[bool, ...] | None = None, stem_stride: int = 1) -> None:
        super().__init__()
        residual = residual or (False,) * len(widths)
        stages, channels = [], in_chans
        for i, (width, res) in enumerate(zip(widths, residual)):
            layers: list[nn.Module] = [_conv_bn(channels, width, stem_stride if i == 0 else 1)]
            if res:
                layers.append(_Residual(nn.Sequential(_conv_bn(width, width), _conv_bn(width, width))))
            layers.append(nn.MaxPool2d(2))
            stages.append(nn.Sequential(*layers))
            channels = width
        self.features = nn.Sequential(*stages)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, images: Tensor) -> Tensor:
        """(B, C, H, W) -> logits (B, K)."""
        x = self.features(images)  # (B, widths[-1], H / (stem_stride 2^stages), W / (stem_stride 2^stages))
        return self.head(x.mean(dim=(2, 3)))  # (B, K): global average pooling

    def get_classifier(self) -> nn.Module:
        """The head, as timm models name it (so the fine-tuning helpers work on this model too)."""
        return self.head


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(cout), nn.GELU())


class _Residual(nn.Module):
    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


# ---------------------------------------------------------------------------- fine-tuning
def finetune_model(name: str, num_classes: int, image_size: int | None = None) -> tuple[nn.Module, str]:
    """The model to fine-tune, with a fresh head for ``num_classes``, and a line saying what it is.

    FULL scale: ``load_timm(name, num_classes=num_classes, require=True)``, the pretrained weights (it
    raises :class:`~vitcourse.pretrained.WeightsUnavailable` before any work when they are neither
    cached nor downloadable). SMOKE scale never downloads or fine-tunes a full-size model on the CPU:
    it builds the same small random-init stand-in that ``load_timm`` falls back to (2 blocks of width
    64 for a ViT) at ``image_size`` (None: the model's own; a CNN, which has no fixed input size, ignores
    it), whatever is cached.
    """
    import timm
    from timm.models import model_entrypoint

    from vitcourse.pretrained import MEANINGLESS, TIMM_SMALL, load_timm

    if SCALE is Scale.FULL:
        model, info = load_timm(name, num_classes=num_classes, require=True)
        return model, info.note
    family = model_entrypoint(name.split(".")[0]).__module__.rsplit(".", 1)[-1]
    kwargs = dict(pretrained=False, num_classes=num_classes, **TIMM_SMALL.get(family, {}))
    try:
        model = timm.create_model(name.split(".")[0], **kwargs, **({"img_size": image_size} if image_size else {}))
    except TypeError:  # a CNN (ResNet, ConvNeXt) has no img_size: its global pooling takes any input size
        if not image_size:
            raise
        model = timm.create_model(name.split(".")[0], **kwargs)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    note = (f"Weights: NOT pretrained. SMOKE scale fine-tunes a small random-init stand-in of {name} "
            f"({TIMM_SMALL.get(family, 'full size')}, {params:.2f} M parameters) instead of the pretrained "
            f"model (set VIT_SCALE=full on a GPU for that). {MEANINGLESS}")
    print(note)
    return model, note


class HFImageClassifier(nn.Module):
    """A Hugging Face image classifier (``ViTForImageClassification``, ...) behind timm's interface, so the
    course's fine-tuning code runs on it unchanged: ``forward(images)`` returns the logits (B, K),
    ``get_classifier()`` names the head (``classifier``), ``reset_classifier(K)`` gives it a fresh one,
    ``pretrained_cfg`` holds the normalisation the checkpoint expects and ``num_classes`` is K."""

    def __init__(self, model: nn.Module, mean: tuple[float, ...] = (0.5, 0.5, 0.5),
                 std: tuple[float, ...] = (0.5, 0.5, 0.5)) -> None:
        super().__init__()
        self.model = model
        self.pretrained_cfg = {"mean": tuple(mean), "std": tuple(std)}

    @property
    def num_classes(self) -> int:
        return int(self.model.config.num_labels)

    def forward(self, images: Tensor) -> Tensor:
        """(B, C, H, W) normalised images -> logits (B, K)."""
        return self.model(pixel_values=images).logits

    def get_classifier(self) -> nn.Module:
        return self.model.classifier

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh linear head for ``num_classes`` (normal std 0.02 weights, zero bias, as transformers does)."""
        head = nn.Linear(self.model.config.hidden_size, num_classes)
        nn.init.trunc_normal_(head.weight, std=self.model.config.initializer_range)
        nn.init.zeros_(head.bias)
        self.model.classifier = head
        self.model.config.num_labels = num_classes
        self.model.num_labels = num_classes


def hf_finetune_model(model_id: str, num_classes: int, image_size: int | None = None) -> tuple[nn.Module, str]:
    """The Hugging Face ``ViTForImageClassification`` to fine-tune, behind :class:`HFImageClassifier`, and a line
    saying what it is: :func:`finetune_model`'s twin for transformers. FULL scale: the pretrained checkpoint
    (required: :class:`~vitcourse.pretrained.WeightsUnavailable` before any work when it is neither cached nor
    downloadable) with a fresh head; SMOKE: the small random-init stand-in of ``load_transformers`` (2 layers of
    width 64) at ``image_size``, whatever is cached."""
    import transformers

    from vitcourse.pretrained import MEANINGLESS, _small_config, load_transformers

    cls = transformers.ViTForImageClassification
    if SCALE is Scale.FULL:
        model, info = load_transformers(model_id, cls=cls, require=True, num_labels=num_classes,
                                        ignore_mismatched_sizes=True)
        try:
            with_processor = transformers.AutoImageProcessor.from_pretrained(model_id, local_files_only=True)
            mean, std = with_processor.image_mean, with_processor.image_std
        except OSError:
            mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)  # google/vit-*'s processor normalises to [-1, 1]
        return HFImageClassifier(model, mean, std), info.note
    config = _small_config(model_id, cls, {"num_labels": num_classes, **({"image_size": image_size}
                                                                           if image_size else {})})
    model = HFImageClassifier(cls(config))
    params = sum(p.numel() for p in model.parameters()) / 1e6
    note = (f"Weights: NOT pretrained. SMOKE scale fine-tunes a small random-init stand-in of {model_id} "
            f"(transformers ViTForImageClassification, 2 layers of width 64, {params:.2f} M parameters) instead of "
            f"the pretrained model (set VIT_SCALE=full on a GPU for that). {MEANINGLESS}")
    print(note)
    return model, note


# ---------------------------------------------------------------------------- Week 3's trained models
@dataclass
class Week3Models:
    """The ViT and the CNN trained in the Week 3 notebook (both in eval mode, on the CPU).

    Both take images normalised with ``mean`` and ``std`` (use :meth:`normalize` on (B, 3, 32, 32)
    images in [0, 1]) and return logits over ``classes``.
    """

    vit: nn.Module  # vitcourse.vit.VisionTransformer
    cnn: nn.Module  # ConvNet
    mean: Tensor  # (3,)
    std: Tensor  # (3,)
    classes: tuple[str, ...]
    dataset: str  # the data they were trained on, e.g. "digits"
    info: dict[str, Any] = field(default_factory=dict)  # configs and test accuracies

    def normalize(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) in [0, 1] -> the models' input."""
        return (images - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)


def week3_dir() -> Path:
    """``<cache>/03_training``: where the Week 3 notebook saves its trained models."""
    return cache_dir() / WEEK3_FOLDER


def writable_dir(folder: str | Path) -> Path:
    """``folder`` (created if need be) when it can be written to; otherwise a fresh temporary folder, and a
    printed line saying so (a grader's sandbox, for instance, mounts the course read-only)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.touch()
        probe.unlink()
        return folder
    except OSError:
        fallback = Path(tempfile.mkdtemp(prefix="vitcourse-"))
        print(f"{folder} cannot be written to here; using {fallback} instead")
        return fallback


def save_week3_models(vit: nn.Module, vit_config: dict, cnn: nn.Module, cnn_config: dict, mean: Tensor,
                      std: Tensor, classes: tuple[str, ...], dataset: str, metrics: dict[str, float]) -> Path | None:
    """Write ``vit.pt`` and ``cnn.pt`` to :func:`week3_dir` (each: config, state dict, normalisation,
    classes, dataset, metrics); returns the folder, or None (and says why) when it cannot be written."""
    folder = week3_dir()
    common = dict(mean=mean.detach().cpu().float(), std=std.detach().cpu().float(), classes=list(classes),
                  dataset=dataset, metrics=dict(metrics), scale=SCALE.value)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, model, config in (("vit", vit, vit_config), ("cnn", cnn, cnn_config)):
            state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            torch.save(dict(common, config=dict(config), state_dict=state), folder / f"{name}.pt")
    except OSError as exc:
        print(f"could not save the Week 3 models to {folder} ({exc}); later weeks will use untrained models")
        return None
    return folder


def load_week3_models(folder: str | Path | None = None) -> Week3Models | None:
    """The models the Week 3 notebook trained, or None when it has not been run yet (or the files are
    from an incompatible version). Offline, no training: Weeks 6 and 7 call this.

    Example::

        trained = load_week3_models()
        if trained is None:
            print("run weeks/03_training first; using an untrained ViT")
        else:
            logits = trained.vit(trained.normalize(images))   # images (B, 3, 32, 32) in [0, 1]
    """
    from vitcourse.vit import VisionTransformer

    folder = Path(folder) if folder is not None else week3_dir()
    try:
        saved = {name: torch.load(folder / f"{name}.pt", map_location="cpu", weights_only=True)
                 for name in ("vit", "cnn")}
        vit = VisionTransformer(**saved["vit"]["config"])
        vit.load_state_dict(saved["vit"]["state_dict"])
        cnn = ConvNet(**saved["cnn"]["config"])
        cnn.load_state_dict(saved["cnn"]["state_dict"])
    except (FileNotFoundError, KeyError, RuntimeError, TypeError):
        return None
    vit_file = saved["vit"]
    info = {"vit_config": vit_file["config"], "cnn_config": saved["cnn"]["config"], "metrics": vit_file["metrics"],
            "scale": vit_file.get("scale")}
    return Week3Models(vit.eval(), cnn.eval(), vit_file["mean"], vit_file["std"], tuple(vit_file["classes"]),
                       vit_file["dataset"], info)


# ---------------------------------------------------------------------------- mimetic initialisation
def _factor(product: Tensor, rank: int) -> tuple[Tensor, Tensor]:
    """Two (D, rank) factors a, b with a @ b.T the best rank-``rank`` approximation of ``product`` (D, D)."""
    u, s, vh = torch.linalg.svd(product)
    root = s[:rank].sqrt()
    return u[:, :rank] * root, vh[:rank].T * root  # (D, rank) each


@torch.no_grad()
def mimetic_init(vit: nn.Module, qk: tuple[float, float] = (0.7, 0.7), vo: tuple[float, float] = (0.4, 0.4),
                 sincos_pos_embed: bool = True) -> nn.Module:
    """Mimetic initialisation of a ViT's attention (Trockman & Kolter, 2023), in place; returns ``vit``.

    Trained ViTs have, per head, ``W_q W_k^T`` close to a multiple of the identity plus noise and, per
    layer, ``W_v W_o`` close to a negative multiple of the identity. Starting there, with ``(alpha, beta)``
    = ``qk`` and ``vo`` and Z a random (D, D) matrix of N(0, 1/D) entries:

        head h:  W_q,h W_k,h^T = rank-Dh part of (alpha_qk Z + beta_qk I)   (a token attends to similar tokens)
        layer:   W_v W_o       = alpha_vo Z' - beta_vo I                     (full rank)

    (in ``nn.Linear`` terms: ``q = x @ qkv.weight[:D].T``, so the factor is written into the weight's rows;
    the qkv and proj biases become 0). With ``sincos_pos_embed`` a learned ``pos_embed`` (1, T, D) starts
    as the 2D sin-cos table (CLS row 0), so that "similar" at the start means "nearby": the first blocks
    attend locally, like a convolution. A small ViT on a few thousand images finds that slowly from the
    default initialisation (``data/README.md``: 0.955 after 30 epochs against 0.988, at chance for the
    first 200 steps).

    Works on the course's ``VisionTransformer`` and on timm's (both have ``blocks[i].attn.qkv`` and
    ``.proj``); draws from torch's global generator (seed it first).
    """
    from vitcourse.positions import sincos_2d

    for block in vit.blocks:
        attn = block.attn
        dim, heads = attn.proj.in_features, attn.num_heads
        head_dim = dim // heads
        eye = torch.eye(dim)
        q_rows, k_rows = [], []
        for _ in range(heads):
            z = torch.randn(dim, dim) / dim**0.5
            a, b = _factor(qk[0] * z + qk[1] * eye, head_dim)  # (D, Dh) each: a @ b.T ~ alpha Z + beta I
            q_rows.append(a.T)  # (Dh, D): this head's rows of W_q
            k_rows.append(b.T)
        z = torch.randn(dim, dim) / dim**0.5
        v, o = _factor(vo[0] * z - vo[1] * eye, dim)  # x @ v @ o.T = x @ (alpha Z - beta I)
        weight = attn.qkv.weight  # (3D, D): rows [q | k | v]
        weight[:dim] = torch.cat(q_rows)
        weight[dim:2 * dim] = torch.cat(k_rows)
        weight[2 * dim:] = v.T  # v = x @ W_v.T: W_v.T = v
        attn.proj.weight.copy_(o)  # proj(y) = y @ W_o.T: W_o.T = o.T, W_o = o
        for bias in (attn.qkv.bias, attn.proj.bias):
            if bias is not None:
                bias.zero_()
    pos_embed = getattr(vit, "pos_embed", None)
    if sincos_pos_embed and isinstance(pos_embed, nn.Parameter) and pos_embed.requires_grad:
        h, w = vit.patch_embed.grid_size if hasattr(vit.patch_embed, "grid_size") else vit.grid_size
        prefix = pos_embed.shape[1] - h * w
        table = sincos_2d(h, w, pos_embed.shape[-1])  # (N, D)
        pos_embed[0, prefix:] = table
        pos_embed[0, :prefix] = 0
    return vit


# ---------------------------------------------------------------------------- Weeks 6-8: the shapes models
@dataclass
class ShapesModel:
    """A model trained on the shape scenes, ready to use (eval mode, CPU).

    It takes images normalised with ``mean`` and ``std`` (:meth:`normalize` on (B, 3, 32, 32) images in
    [0, 1], e.g. ``shape_scenes("test").images``) and returns logits (B, 6) over ``classes``
    (``SCENE_CLASSES``). ``info`` holds what made it: the recipe name and its model configuration, the
    seed, the test accuracy measured at the end of training, the training seconds and the file.
    """

    model: nn.Module
    mean: Tensor  # (3,)
    std: Tensor  # (3,)
    classes: tuple[str, ...]
    info: dict[str, Any]
    note: str  # the line printed when it was loaded

    def normalize(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) in [0, 1] -> the model's input."""
        return (images - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)

    @property
    def patch_size(self) -> int | None:
        """P for the ViT, None for the CNN."""
        return self.info["config"].get("patch_size")

    @property
    def grid_size(self) -> tuple[int, int] | None:
        """(h, w) of the ViT's patch grid, None for the CNN."""
        p = self.patch_size
        return None if p is None else (self.info["config"]["img_size"] // p, self.info["config"]["img_size"] // p)


def _read_model_file(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _shapes_model(saved: dict[str, Any], model: nn.Module, path: Path, how: str) -> ShapesModel:
    model.load_state_dict(saved["state_dict"])
    info = {"recipe": saved["recipe"], "config": dict(saved["config"]), "seed": saved.get("seed"),
            "test_acc": saved.get("test_acc"), "seconds": saved.get("seconds"), "path": str(path), "how": how,
            "history": json.loads(saved["history"]) if saved.get("history") else []}
    note = (f"Model: {saved['recipe']} ({type(model).__module__}.{type(model).__name__}, "
            f"{sum(p.numel() for p in model.parameters()):,} parameters), {how}; test accuracy at the end of "
            f"training {saved.get('test_acc', float('nan')):.3f} (seed {saved.get('seed')}).")
    return ShapesModel(model.eval(), saved["mean"].float(), saved["std"].float(), tuple(saved["classes"]), info, note)


def shapes_vit(impl: str = "course", verbose: bool = True, path: str | Path | None = None) -> ShapesModel:
    """The small ViT of Weeks 6-8 with the weights that ship with the course: loads, never trains.

    ``data/models/shapes-vit.pt`` was written by ``python -m vitcourse.train fit shapes-vit --seed 0``
    (patch 4 on 32 x 32 images: 64 patch tokens + CLS, width 64, 4 blocks of 4 heads, MLP ratio 2,
    141,766 parameters, mimetic initialisation; ``data/README.md`` gives its accuracy and training time).

    Args:
        impl: "course": your Week 2 ``vitcourse.vit.VisionTransformer``; "timm": timm's
            ``VisionTransformer`` with the same configuration (the state-dict names are the same, so the
            same weights load into both; timm's attention runs fused by default).
        verbose: print the one-line ``note`` saying what was loaded.
        path: another ``model.pt`` written by ``fit shapes-vit`` (default: the shipped file).

    Raises:
        FileNotFoundError: when the file is missing, with the command that makes it.
    """
    path = Path(path) if path is not None else SHIPPED_MODELS / "shapes-vit.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; make it with `python -m vitcourse.train fit shapes-vit --seed 0 "
                                f"--out runs/shapes-vit` and copy runs/shapes-vit/model.pt there")
    saved = _read_model_file(path)
    config = dict(saved["config"])
    if impl == "course":
        from vitcourse.vit import VisionTransformer

        model: nn.Module = VisionTransformer(**config)
    elif impl == "timm":
        from timm.models.vision_transformer import VisionTransformer as TimmViT

        model = TimmViT(**config)
    else:
        raise ValueError(f"impl={impl!r}: expected 'course' or 'timm'")
    shipped = path.resolve() == (SHIPPED_MODELS / "shapes-vit.pt").resolve()
    loaded = _shapes_model(saved, model, path, f"the weights {'shipped in' if shipped else 'read from'} {path.name} "
                                               f"loaded (no training)")
    if verbose:
        print(loaded.note)
    return loaded


def shapes_cnn(verbose: bool = True, retrain: bool = False) -> ShapesModel:
    """The small CNN of Weeks 6-8 (``ConvNet(widths=(16, 32, 64, 64))``, 61,078 parameters) on the shape scenes.

    The first call on a machine trains it with the course's command (``fit shapes-cnn``: 4 epochs, seed 0,
    ~20-30 s on 2 CPU cores) and caches ``model.pt`` in ``<cache>/models/shapes-cnn/`` (``data/cache`` or
    ``$VIT_DATA_DIR``; a temporary folder where that cannot be written); later calls load it. The printed
    line says which happened. ``retrain=True`` trains again and replaces the cached file.
    """
    from vitcourse.train import RECIPES, fit, load_data

    folder = writable_dir(cache_dir() / "models" / "shapes-cnn")
    path = folder / "model.pt"
    recipe = RECIPES["shapes-cnn"]
    if path.is_file() and not retrain:
        try:
            saved = _read_model_file(path)
            if saved.get("recipe") == recipe.name and dict(saved["config"]) == dict(recipe.model, num_classes=6):
                loaded = _shapes_model(saved, ConvNet(**saved["config"]), path, f"loaded from the cache {path}")
                if verbose:
                    print(loaded.note)
                return loaded
        except (RuntimeError, KeyError, OSError, EOFError):
            pass  # unreadable or from another version: train again
    if verbose:
        print(f"Model: shapes-cnn is not cached in {folder}; training it now with the course's command "
              f"(fit shapes-cnn, {recipe.epochs} epochs, seed 0; ~20-30 s on 2 CPU cores, once per machine)")
    scratch = Path(tempfile.mkdtemp(prefix="shapes-cnn-", dir=folder))
    try:
        fit(recipe, load_data("scenes", seed=0, verbose=False), out_dir=scratch, seed=0, progress=verbose)
        os.replace(scratch / "model.pt", path)  # atomic: a reader never sees half a file
    finally:
        for leftover in sorted(scratch.rglob("*"), reverse=True):
            leftover.unlink() if leftover.is_file() else leftover.rmdir()
        scratch.rmdir()
    loaded = _shapes_model(_read_model_file(path), ConvNet(**recipe.model, num_classes=6), path,
                           f"trained now and cached in {path}")
    if verbose:
        print(loaded.note)
    return loaded


# ---------------------------------------------------------------- Week 7: the fair pair and the textured pair
# Recipes whose weights ship in data/models/<name>.pt (see data/README.md for how and where each was trained).
SHIPPED_RECIPES = ("shapes-vit", "shapes-cnn-matched", "textures-vit", "textures-cnn")


def shipped_model(name: str, verbose: bool = True, impl: str = "course") -> ShapesModel:
    """A model whose weights ship with the course, by recipe name: loads, never trains.

    * ``"shapes-vit"``: the ViT of Weeks 6-8 (the same as :func:`shapes_vit`).
    * ``"shapes-cnn-matched"``: the CNN of :func:`shapes_cnn` trained with exactly the ViT's recipe (same
      scenes, flips, label smoothing, AdamW, schedule, batch 64, 30 epochs): Week 7's fair comparison.
    * ``"textures-vit"``, ``"textures-cnn"``: the same two architectures and recipe on the textured scenes
      (``vitcourse.data.textured_scenes``: texture k fills shape k), for the cue-conflict test of shape bias.

    The CNNs are ``ConvNet``; the ViTs the course's Week 2 ``VisionTransformer`` (``impl="course"``) or timm's
    with the same configuration and weights (``impl="timm"``, as :func:`shapes_vit`). Raises FileNotFoundError,
    with the command that makes the file, when it is missing.
    """
    if name not in SHIPPED_RECIPES:
        raise ValueError(f"no shipped model {name!r}; the course ships {', '.join(SHIPPED_RECIPES)}")
    if name == "shapes-vit":
        return shapes_vit(impl, verbose=verbose)
    path = SHIPPED_MODELS / f"{name}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; make it with `python -m vitcourse.train fit {name} --seed 0 "
                                f"--out runs/{name}` and copy runs/{name}/model.pt there")
    saved = _read_model_file(path)
    if saved["arch"] == "vit" and impl == "timm":
        from timm.models.vision_transformer import VisionTransformer as TimmViT

        model: nn.Module = TimmViT(**saved["config"])
    elif saved["arch"] == "vit":
        from vitcourse.vit import VisionTransformer

        model = VisionTransformer(**saved["config"])
    else:
        model = ConvNet(**saved["config"])
    loaded = _shapes_model(saved, model, path, f"the weights shipped in {path.name} loaded (no training)")
    if verbose:
        print(loaded.note)
    return loaded
