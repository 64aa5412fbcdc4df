"""Pretrained weights for every week: timm, Hugging Face transformers and OpenCLIP through one door.

``load_timm``, ``load_transformers`` and ``load_open_clip`` return the model (in eval mode) and a
:class:`WeightsInfo` saying what it is, and print that in one line. The weights come from, in order:

1. **the local cache**, read with the Hugging Face hub switched offline, so no request is made: the
   hub cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``) for nearly
   all weights; for the few published only at a URL, torch hub's ``$TORCH_HOME/hub/checkpoints``
   (timm) or ``~/.cache/clip`` (OpenCLIP);
2. **a download** into that cache, when ``VIT_OFFLINE`` (and, for the hub, ``HF_HUB_OFFLINE``) is unset
   and the weights' host answers within 1.5 s, at either scale;
3. otherwise, at SMOKE scale (and with ``require=False``), a **small randomly initialised stand-in** of
   the same family and interface (same input size, patch size, outputs and the requested number of
   classes; 2 blocks of width 64 or the like) whose printed line says that its numbers are meaningless
   for any claim about the pretrained model; at FULL scale (and with ``require=True``)
   :class:`WeightsUnavailable`, raised before anything is built.

Importing this module imports none of timm, transformers or open_clip; each loader imports its own.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from vitcourse.data import forced_offline, online
from vitcourse.scale import SCALE, Scale

if TYPE_CHECKING:
    from torch import nn

# Small versions of each timm family: constructor arguments that override the named variant's.
TIMM_SMALL: dict[str, dict[str, Any]] = {
    "vision_transformer": dict(embed_dim=64, depth=2, num_heads=2),  # ViT, DINO(v2), CLIP image towers
    "deit": dict(embed_dim=64, depth=2, num_heads=2),
    "swin_transformer": dict(embed_dim=32, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8)),
    "swin_transformer_v2": dict(embed_dim=32, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8)),
    "resnet": dict(layers=(1, 1, 1, 1), channels=(16, 32, 64, 128), stem_width=16),
    "convnext": dict(depths=(1, 1, 1, 1), dims=(32, 64, 128, 256)),
}
MEANINGLESS = "Numbers from it are meaningless for any claim about the pretrained model."


class WeightsUnavailable(RuntimeError):
    """Pretrained weights were required (FULL scale, or ``require=True``) but are neither cached nor downloadable."""


@dataclass(frozen=True)
class WeightsInfo:
    """What a loader returned: ``source`` is "pretrained", "random-init stand-in" or "random-init" (asked for)."""

    library: str  # "timm", "transformers" or "open_clip"
    name: str  # the name or model id that was asked for
    source: str
    note: str  # the line printed when it was loaded

    @property
    def is_pretrained(self) -> bool:
        return self.source == "pretrained"

    @property
    def is_standin(self) -> bool:
        return self.source == "random-init stand-in"


# -- cache and network ------------------------------------------------------------------------------
@contextmanager
def hub_offline() -> Iterator[None]:
    """Inside the block the Hugging Face hub is offline (as with HF_HUB_OFFLINE=1): cached files only, no request.

    The hub reads HF_HUB_OFFLINE once, when it is imported, so the block sets its constant as well.
    """
    import huggingface_hub.constants as hub

    old_env, old_flag = os.environ.get("HF_HUB_OFFLINE"), hub.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"], hub.HF_HUB_OFFLINE = "1", True
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE = old_flag
        if old_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old_env


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub."""
    import huggingface_hub.constants as hub

    return Path(hub.HF_HUB_CACHE)


def _hf_cached(repo_id: str, filename: str, revision: str | None = None) -> str | None:
    """The local path of ``filename`` of ``repo_id`` in the hub cache, or of the .safetensors file that timm
    and OpenCLIP look for first in its place; None when neither is cached."""
    from huggingface_hub import try_to_load_from_cache

    safe = {"pytorch_model.bin": "model.safetensors", "open_clip_pytorch_model.bin": "open_clip_model.safetensors"}
    stem, ext = os.path.splitext(filename)
    first = safe.get(filename) or (stem + ".safetensors" if ext in (".bin", ".pth") else None)
    for name in (first, filename):
        path = try_to_load_from_cache(repo_id, name, revision=revision) if name else None
        if isinstance(path, str):  # None: not cached; a sentinel object: known to be missing upstream
            return path
    return None


def _hub_host() -> tuple[str, int]:
    import huggingface_hub.constants as hub

    url = urlparse(hub.ENDPOINT)
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def _url_host(url: str) -> tuple[str, int]:
    parts = urlparse(url)
    return parts.hostname or "", parts.port or (80 if parts.scheme == "http" else 443)


def _unreachable(host: tuple[str, int], hub: bool) -> str:
    """Why a download from ``host`` cannot happen now ('' when it can)."""
    if forced_offline():
        return "this machine is offline (VIT_OFFLINE is set)"
    if hub and os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in ("", "0", "false", "no", "off"):
        return "the Hugging Face hub is offline (HF_HUB_OFFLINE is set)"
    if not online(host=host[0], port=host[1]):
        return f"this machine is offline ({host[0]} did not answer within 1.5 s)"
    return ""


def _required(require: bool | None) -> bool:
    return (SCALE is Scale.FULL) if require is None else require


def _why(require: bool | None) -> str:
    return "require=True" if require else "at FULL scale the course never uses a stand-in"


def _unavailable(library: str, name: str, reason: str, where: str, why: str) -> WeightsUnavailable:
    return WeightsUnavailable(
        f"Pretrained weights for {name} ({library}) are needed ({why}) but they are not in the local cache and "
        f"{reason}. Looked in {where}. To fix: load them once on a machine with internet (they are saved in that "
        f"cache), then copy that cache folder to the same place here, or anywhere and point the variable named "
        f"above at it; or pass require=False to accept a random-init stand-in.")


def _done(model: nn.Module, info: WeightsInfo) -> tuple[nn.Module, WeightsInfo]:
    print(info.note)
    return model.eval(), info


def _count(model: nn.Module) -> str:
    return f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters"


def _standin_note(library: str, name: str, reason: str, what: str) -> str:
    return (f"Weights: NOT pretrained. {name} ({library}) is not in the local cache and {reason}, so this is "
            f"{what}. {MEANINGLESS}")


# -- timm ---------------------------------------------------------------------------------------------
def _timm_cached(cfg: Any) -> tuple[str | None, dict[str, Any], str]:
    """(cached weight file or None, the pretrained_cfg overlay that loads it, where it was looked for)."""
    import torch.hub

    hub_where = f"the Hugging Face cache {hf_cache_dir()} (moved by HF_HUB_CACHE or HF_HOME)"
    url_dir = Path(torch.hub.get_dir()) / "checkpoints"
    url_where = f"torch hub's {url_dir} (moved by TORCH_HOME)"
    if cfg.hf_hub_id:
        repo_id, _, revision = cfg.hf_hub_id.partition("@")
        path = _hf_cached(repo_id, cfg.hf_hub_filename or "pytorch_model.bin", revision or None)
        if path:  # a plain state dict, unless the family loads its hub file itself (custom_load="hf")
            return path, dict(file=path, custom_load=cfg.custom_load == "hf"), hub_where
    if cfg.url:
        path = url_dir / os.path.basename(urlparse(cfg.url).path)
        if path.is_file():
            return str(path), dict(file=str(path), custom_load=cfg.custom_load), url_where
    return None, {}, hub_where if cfg.hf_hub_id else url_where


def load_timm(name: str, pretrained: bool = True, num_classes: int | None = None, require: bool | None = None,
              **kwargs: Any) -> tuple[nn.Module, WeightsInfo]:
    """A timm model by name (e.g. "vit_base_patch16_224.augreg2_in21k_ft_in1k"), pretrained when possible.

    Args:
        name: a timm registry name, optionally with a weight tag after a dot (not "hf-hub:..." names).
        pretrained: False builds the full-size model with random weights, as asked (source "random-init").
        num_classes: classifier outputs (None: the pretrained head's, usually 1000; 0: no head, features).
        require: never use a stand-in, raise WeightsUnavailable instead; None = only at FULL scale.
        **kwargs: passed to ``timm.create_model`` (they override the stand-in's small sizes too).

    The stand-in is ``timm.create_model(name, pretrained=False, **TIMM_SMALL[family])`` for the families in
    ``TIMM_SMALL`` (same patch size, image size, tokens and head), else the full-size model, randomly initialised.
    """
    import timm
    from timm.models import get_pretrained_cfg, model_entrypoint

    if name.startswith("hf-hub:"):
        raise ValueError("load_timm takes timm registry names; load hub repositories with load_transformers")
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if not pretrained:
        model = timm.create_model(name, pretrained=False, **kwargs)
        return _done(model, WeightsInfo("timm", name, "random-init", f"Weights: {name} (timm) randomly initialised, "
                                        f"full size ({_count(model)}), as asked (pretrained=False)."))
    cfg = get_pretrained_cfg(name)
    if cfg is None:
        raise ValueError(f"timm has no pretrained weights for {name!r} (see timm.list_models(pretrained=True))")
    path, overlay, where = _timm_cached(cfg)
    if path:
        with hub_offline():
            model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
        return _done(model, WeightsInfo("timm", name, "pretrained",
                                        f"Weights: pretrained {name} (timm), from the local cache ({path})."))
    host = _hub_host() if cfg.hf_hub_id else _url_host(cfg.url)
    reason = _unreachable(host, hub=bool(cfg.hf_hub_id))
    if not reason:
        try:
            model = timm.create_model(name, pretrained=True, **kwargs)
            return _done(model, WeightsInfo("timm", name, "pretrained",
                                            f"Weights: pretrained {name} (timm), downloaded from {host[0]}."))
        except Exception as exc:  # noqa: BLE001 - a failed download is reported, not fatal at SMOKE
            reason = f"the download from {host[0]} failed ({type(exc).__name__}: {exc})"
    if _required(require):
        raise _unavailable("timm", name, reason, where, _why(require))
    family = model_entrypoint(name.split(".")[0]).__module__.rsplit(".", 1)[-1]
    small = TIMM_SMALL.get(family)
    model = timm.create_model(name, pretrained=False, **{**(small or {}), **kwargs})
    size = ", ".join(f"{k}={v}" for k, v in small.items()) if small else "full size: no small variant for this family"
    what = f"a randomly initialised {name.split('.')[0]} ({size}; {_count(model)})"
    return _done(model, WeightsInfo("timm", name, "random-init stand-in", _standin_note("timm", name, reason, what)))


# -- Hugging Face transformers -------------------------------------------------------------------------
_LOADING_ONLY = {"cache_dir", "revision", "ignore_mismatched_sizes", "dtype", "torch_dtype", "device_map",
                 "local_files_only", "token", "use_safetensors"}


def _small_config(model_id: str, model_cls: type, kwargs: dict[str, Any]):
    """A small config of the family the model id names (CLIP, DINOv2, Swin, ViT/DeiT), or None."""
    import transformers

    key = model_id.lower()
    patch = int(m.group(1)) if (m := re.search(r"patch(\d+)", key)) else None
    resolution = int(m.group(1)) if (m := re.search(r"-(\d{3})(?:-|$)", key)) else 224
    block = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2)
    if "clip" in key:
        config = transformers.CLIPConfig(
            text_config=dict(**block, intermediate_size=128),
            vision_config=dict(**block, intermediate_size=128, patch_size=patch or 32, image_size=resolution),
            projection_dim=64)
    elif "dinov2" in key:
        config = transformers.Dinov2Config(**block, patch_size=patch or 14, image_size=resolution)
    elif "swin" in key:
        config = transformers.SwinConfig(embed_dim=32, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8],
                                         patch_size=patch or 4, image_size=resolution)
    elif "vit" in key or "deit" in key:
        config = transformers.ViTConfig(**block, intermediate_size=128, patch_size=patch or 16, image_size=resolution)
    else:
        return None
    if model_cls.__name__.endswith("ForImageClassification") and "num_labels" not in kwargs:
        config.num_labels = 1000  # convention: the hub's classification checkpoints are ImageNet-1k
    for k, v in kwargs.items():
        if k not in _LOADING_ONLY:
            setattr(config, k, v)
    return config


def load_transformers(model_id: str, cls: str | type = "auto", require: bool | None = None,
                      **kwargs: Any) -> tuple[nn.Module, WeightsInfo]:
    """A Hugging Face model (e.g. "google/vit-base-patch16-224", "openai/clip-vit-base-patch32",
    "facebook/dinov2-small") via ``cls.from_pretrained``, pretrained when possible.

    Args:
        model_id: a hub repository id.
        cls: "auto" (``AutoModel``: the backbone without a task head), a class of transformers such as
            ``ViTForImageClassification`` or ``CLIPModel``, or its name.
        require: never use a stand-in, raise WeightsUnavailable instead; None = only at FULL scale.
        **kwargs: passed to ``from_pretrained`` (e.g. ``num_labels=10, ignore_mismatched_sizes=True``);
            config fields among them also shape the stand-in.

    The stand-in is ``cls`` built from a small config of the family named in the id (CLIP, DINOv2, Swin,
    ViT/DeiT: 2 layers of width 64, the patch size and resolution read from the id); other families have
    no stand-in and raise WeightsUnavailable when not cached and offline.
    """
    import transformers

    model_cls = transformers.AutoModel if cls == "auto" else getattr(transformers, cls) if isinstance(cls, str) else cls
    label = f"{model_id} (transformers {model_cls.__name__})"
    where = f"the Hugging Face cache {kwargs.get('cache_dir') or hf_cache_dir()} (moved by HF_HUB_CACHE or HF_HOME)"
    try:
        with hub_offline():
            model = model_cls.from_pretrained(model_id, **kwargs)
        return _done(model, WeightsInfo("transformers", model_id, "pretrained",
                                        f"Weights: pretrained {label}, from the local cache."))
    except OSError:  # what from_pretrained raises when the files are not cached
        pass
    host = _hub_host()
    reason = _unreachable(host, hub=True)
    if not reason:
        try:
            model = model_cls.from_pretrained(model_id, **kwargs)
            return _done(model, WeightsInfo("transformers", model_id, "pretrained",
                                            f"Weights: pretrained {label}, downloaded from {host[0]}."))
        except OSError as exc:
            reason = f"the download from {host[0]} failed ({exc})"
    if _required(require):
        raise _unavailable("transformers", model_id, reason, where, _why(require))
    config = _small_config(model_id, model_cls, kwargs)
    if config is None:
        raise _unavailable("transformers", model_id, reason, where, "no random-init stand-in exists for this "
                           "family; CLIP, DINOv2, Swin and ViT/DeiT have one")
    model = model_cls.from_config(config) if model_cls.__name__.startswith("Auto") else model_cls(config)
    what = f"a randomly initialised small {type(model).__name__} (2 layers, width 64; {_count(model)})"
    return _done(model, WeightsInfo("transformers", model_id, "random-init stand-in",
                                    _standin_note("transformers", model_id, reason, what)))


# -- OpenCLIP ---------------------------------------------------------------------------------------
def _open_clip_cached(cfg: dict[str, Any]) -> tuple[str | None, str]:
    """(the cached checkpoint of an OpenCLIP pretrained config or None, where it was looked for)."""
    if cfg.get("hf_hub"):  # "org/repo/" (the default file name) or "org/repo/file.bin"
        repo_id, filename = os.path.split(cfg["hf_hub"])
        where = f"the Hugging Face cache {hf_cache_dir()} (moved by HF_HUB_CACHE or HF_HOME)"
        return _hf_cached(repo_id, filename or "open_clip_pytorch_model.bin"), where
    path = Path("~/.cache/clip").expanduser() / os.path.basename(urlparse(cfg.get("url", "")).path)
    return (str(path) if path.is_file() else None), f"OpenCLIP's {path.parent}"


def _open_clip_build(model_name: str, **kwargs: Any) -> tuple[nn.Module, Any, Any]:
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(model_name, **kwargs)  # (model, train, eval)
    return model, preprocess, open_clip.get_tokenizer(model_name)


def load_open_clip(model_name: str, pretrained_tag: str, require: bool | None = None,
                   ) -> tuple[nn.Module, Any, Any, WeightsInfo]:
    """An OpenCLIP model (e.g. "ViT-B-32", "laion2b_s34b_b79k"): (model, preprocess, tokenizer, info).

    ``preprocess`` is OpenCLIP's evaluation transform (PIL image -> (3, S, S) normalised tensor) with the
    tag's mean, std and resizing, and ``tokenizer(list of str) -> (B, 77) int64`` is
    ``open_clip.get_tokenizer(model_name)``, as ``open_clip.create_model_and_transforms`` and its README give them.

    The stand-in keeps the config's image size, patch size, context length and vocabulary and shrinks the
    towers (ViT: 2 layers of width 64, ResNet: one block per stage of width 16; text: 2 layers of width 64;
    embedding 64); configs with a timm image tower or a Hugging Face text
    tower have no stand-in and raise WeightsUnavailable when not cached and offline.
    """
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model_name, pretrained_tag)
    if not cfg:
        raise ValueError(f"OpenCLIP has no weights {pretrained_tag!r} for {model_name!r} "
                         "(see open_clip.list_pretrained())")
    preprocess_cfg = dict(image_mean=cfg.get("mean"), image_std=cfg.get("std"),
                          image_interpolation=cfg.get("interpolation"), image_resize_mode=cfg.get("resize_mode"))
    name = f"{model_name} {pretrained_tag}"
    path, where = _open_clip_cached(cfg)
    if path:
        with hub_offline():
            model, preprocess, tokenizer = _open_clip_build(model_name, pretrained=path, **preprocess_cfg)
        info = WeightsInfo("open_clip", name, "pretrained", f"Weights: pretrained {name} (open_clip), "
                           f"from the local cache ({path}).")
        return _done(model, info)[0], preprocess, tokenizer, info
    host = _hub_host() if cfg.get("hf_hub") else _url_host(cfg["url"])
    reason = _unreachable(host, hub=bool(cfg.get("hf_hub")))
    if not reason:
        try:
            model, preprocess, tokenizer = _open_clip_build(model_name, pretrained=pretrained_tag)
            info = WeightsInfo("open_clip", name, "pretrained", f"Weights: pretrained {name} (open_clip), "
                               f"downloaded from {host[0]}.")
            return _done(model, info)[0], preprocess, tokenizer, info
        except Exception as exc:  # noqa: BLE001 - a failed download is reported, not fatal at SMOKE
            reason = f"the download from {host[0]} failed ({type(exc).__name__}: {exc})"
    if _required(require):
        raise _unavailable("open_clip", name, reason, where, _why(require))
    model_cfg = open_clip.get_model_config(model_name)
    vision, text = model_cfg["vision_cfg"], model_cfg["text_cfg"]
    if "timm_model_name" in vision or "hf_model_name" in text or "hf_tokenizer_name" in text:
        raise _unavailable("open_clip", name, reason, where, "no random-init stand-in exists for a config with a "
                           "timm image tower or a Hugging Face text tower")
    resnet = isinstance(vision["layers"], (list, tuple))  # ModifiedResNet: one block count per stage
    small_vision = {**vision, "layers": [1] * len(vision["layers"]) if resnet else 2, "width": 16 if resnet else 64,
                    "head_width": 32}
    small_text = {**text, "layers": 2, "width": 64, "heads": 2}
    with hub_offline():
        model, preprocess, tokenizer = _open_clip_build(model_name, pretrained=None, embed_dim=64,
                                                        vision_cfg=small_vision, text_cfg=small_text, **preprocess_cfg)
    what = (f"a randomly initialised small {model_name} (image tower layers={small_vision['layers']}, "
            f"width={small_vision['width']}; text tower 2 layers, width 64; {_count(model)})")
    info = WeightsInfo("open_clip", name, "random-init stand-in", _standin_note("open_clip", name, reason, what))
    return _done(model, info)[0], preprocess, tokenizer, info
