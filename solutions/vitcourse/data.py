"""Image data for the notebooks: CIFAR-10 when it is available, a stand-in with the same shapes
when it is not. Not an exercise.

``load_cifar10()`` returns images as float32 tensors in [0, 1] of shape (N, 3, 32, 32) and
integer labels 0..9, and prints plainly which data it is:

1. **CIFAR-10** from the cache folder (``data/cache/`` at the repository root, or ``$VIT_DATA_DIR``)
   when a previous run downloaded it there;
2. otherwise **CIFAR-10 downloaded** with torchvision into that folder, but only when a download is
   allowed (``download=True``, or by default at FULL scale) and the machine is online
   (``VIT_OFFLINE`` unset and a 1.5 s connection to the CIFAR server succeeds);
3. otherwise the **offline stand-in**: scikit-learn's 1,797 handwritten digits (8 x 8, shipped
   with scikit-learn, no download), upsampled to 32 x 32 and painted with a random foreground
   and background colour per image. Ten classes, the same shapes as CIFAR-10, far easier.

Tests and SMOKE runs never need the network.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from vitcourse.scale import SCALE, Scale

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DIGIT_CLASSES = tuple(f"digit {i}" for i in range(10))
CIFAR_HOST = ("www.cs.toronto.edu", 443)


@dataclass
class ImageData:
    x_train: Tensor  # (N_train, 3, 32, 32) float32 in [0, 1]
    y_train: Tensor  # (N_train,) int64 in 0..9
    x_test: Tensor  # (N_test, 3, 32, 32)
    y_test: Tensor  # (N_test,)
    classes: tuple[str, ...]
    source: str  # "cifar10" or "digits-fallback"

    @property
    def is_cifar10(self) -> bool:
        return self.source == "cifar10"


def cache_dir() -> Path:
    """Where datasets are cached (gitignored): $VIT_DATA_DIR, or data/cache at the repository root."""
    env = os.environ.get("VIT_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "data" / "cache"


def online(timeout: float = 1.5) -> bool:
    """True when downloads are allowed and the CIFAR server answers within ``timeout`` seconds."""
    if os.environ.get("VIT_OFFLINE"):
        return False
    try:
        with socket.create_connection(CIFAR_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def _subset(x: Tensor, y: Tensor, n: int | None, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    if n is None or n >= len(y):
        return x, y
    index = torch.randperm(len(y), generator=generator)[:n]
    return x[index], y[index]


def _cifar10(root: Path, download: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    from torchvision.datasets import CIFAR10

    def to_tensors(ds) -> tuple[Tensor, Tensor]:
        x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).float() / 255.0  # (N, 32, 32, 3) -> (N, 3, 32, 32)
        return x, torch.tensor(ds.targets, dtype=torch.long)

    train = CIFAR10(str(root), train=True, download=download)
    test = CIFAR10(str(root), train=False, download=download)
    return (*to_tensors(train), *to_tensors(test))


def digits_fallback(seed: int = 0, test_fraction: float = 1 / 6) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """scikit-learn's digits as coloured 3 x 32 x 32 images: (x_train, y_train, x_test, y_test)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    g = torch.Generator().manual_seed(seed)
    ink = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0  # (N, 1, 8, 8) in [0, 1]
    ink = F.interpolate(ink, size=(32, 32), mode="bilinear", align_corners=False).clamp(0, 1)
    n = len(ink)
    foreground = 0.5 + 0.5 * torch.rand(n, 3, 1, 1, generator=g)  # a bright colour for the digit
    background = 0.4 * torch.rand(n, 3, 1, 1, generator=g)  # a dark one behind it
    x = background * (1 - ink) + foreground * ink  # (N, 3, 32, 32)
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(n, generator=g)
    n_test = int(n * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def load_cifar10(n_train: int | None = None, n_test: int | None = None, seed: int = 0,
                 download: bool | None = None, verbose: bool = True) -> ImageData:
    """CIFAR-10 (or the offline stand-in), optionally a random subset of each split.

    Args:
        n_train, n_test: keep this many random images of each split (None: all).
        seed: for the subsets and the stand-in's colours and split.
        download: allow a download when CIFAR-10 is not cached; None = only at FULL scale.
        verbose: print which data was loaded and why.
    """
    root = cache_dir()
    cached = (root / "cifar-10-batches-py").is_dir()
    allowed = (SCALE is Scale.FULL) if download is None else download
    reason = ""
    data = None
    if cached or allowed:
        if not cached and not online():
            reason = "offline (VIT_OFFLINE is set or the CIFAR server did not answer)"
        else:
            try:
                root.mkdir(parents=True, exist_ok=True)
                data = _cifar10(root, download=not cached)
            except Exception as exc:  # noqa: BLE001 - any failure means: use the stand-in
                reason = f"loading CIFAR-10 failed ({type(exc).__name__}: {exc})"
    else:
        reason = (f"CIFAR-10 is not in {root} and downloads are off at {SCALE.value.upper()} scale "
                  "(pass download=True or run at FULL scale to fetch it, 170 MB)")
    if data is not None:
        source, classes = "cifar10", CIFAR10_CLASSES
    else:
        data = digits_fallback(seed)
        source, classes = "digits-fallback", DIGIT_CLASSES
    g = torch.Generator().manual_seed(seed)
    x_train, y_train = _subset(data[0], data[1], n_train, g)
    x_test, y_test = _subset(data[2], data[3], n_test, g)
    if verbose:
        if source == "cifar10":
            print(f"Data: CIFAR-10 from {root} ({len(y_train)} train / {len(y_test)} test images).")
        else:
            print(f"Data: NOT CIFAR-10. Using the offline stand-in: scikit-learn digits as 3x32x32 "
                  f"colour images ({len(y_train)} train / {len(y_test)} test, 10 classes), because "
                  f"{reason}. Numbers below are about this stand-in, not CIFAR-10.")
    return ImageData(x_train, y_train, x_test, y_test, classes, source)
