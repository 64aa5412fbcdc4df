"""Models the course defines (not exercises): the CNN teacher, the stand-in for fine-tuning, and the
Week 3 models that later weeks reuse.

* :class:`ConvNet`: a small VGG/ResNet-9-style CNN, the teacher for distillation (Week 3) and the CNN
  that Week 7 compares a ViT with.
* :func:`finetune_model`: the pretrained timm model to fine-tune, or at SMOKE scale a small
  random-init stand-in of it.
* :func:`save_week3_models` / :func:`load_week3_models`: the ViT trained from scratch on digits in
  the Week 3 notebook and its CNN teacher, saved under ``<cache>/03_training/`` so that Weeks 6 and 7
  can use trained models offline (their pictures then show structure, not noise).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vitcourse.data import cache_dir
from vitcourse.scale import SCALE, Scale

WEEK3_FOLDER = "03_training"


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
    64 for a ViT) at ``image_size`` (None: the model's own), whatever is cached.
    """
    import timm
    from timm.models import model_entrypoint

    from vitcourse.pretrained import MEANINGLESS, TIMM_SMALL, load_timm

    if SCALE is Scale.FULL:
        model, info = load_timm(name, num_classes=num_classes, require=True)
        return model, info.note
    family = model_entrypoint(name.split(".")[0]).__module__.rsplit(".", 1)[-1]
    size = {"img_size": image_size} if image_size else {}
    model = timm.create_model(name.split(".")[0], pretrained=False, num_classes=num_classes,
                              **TIMM_SMALL.get(family, {}), **size)
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
