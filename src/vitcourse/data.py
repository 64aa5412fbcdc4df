"""Image data for every week: one loader for real datasets, with a labelled stand-in when one is missing.

``load_dataset(name)`` returns an :class:`ImageData` whose splits yield ``(image, label)`` pairs, the
image a float32 tensor (C, S, S) in [0, 1] and the label a 0-d int64 tensor. Small datasets also hold
each split as one tensor, ``x_train`` (N, C, S, S) and ``y_train`` (N,).

Real datasets, and where they come from when they are not in the cache folder (``cache_dir()``):

====================  ====================================  ======================  ===============
name                  download (host)                       split kept in memory?   stand-in
====================  ====================================  ======================  ===============
``cifar10``           www.cs.toronto.edu, 170 MB            yes, (N, 3, 32, 32)     digits
``food101``           data.vision.ee.ethz.ch, 5 GB          no: 101,000 JPEGs       shapes
``eurosat``           huggingface.co, 90 MB                 no: 27,000 JPEGs        shapes
MedMNIST 2D flags     zenodo.org, one .npz per flag+size    yes at 28/64 px         shapes
====================  ====================================  ======================  ===============

A real dataset is read from the cache when it is there; otherwise it is downloaded when a download is
allowed (``download=True``, or by default at FULL scale) and the machine is online (``VIT_OFFLINE``
unset and its host answers within 1.5 s). When neither works:

* at SMOKE scale (and with ``require=False``) the loader uses a **stand-in** with the requested image
  size and channel count and prints one line saying it is NOT the real dataset, which stand-in it is
  and why;
* at FULL scale (and with ``require=True``) it raises :class:`DataUnavailable` before any work,
  naming the dataset, the folder it looked in and the fix.

Generated data, never downloaded: ``digits`` (scikit-learn's 8 x 8 handwritten digits, upsampled and
coloured), ``shapes`` (``make_shapes``: coloured geometric shapes with per-image attributes for
captions), and ``sample_photos()`` (scikit-image's colour photographs, for pictures).
"""

from __future__ import annotations

import math
import os
import pickle
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset, Subset, TensorDataset

from vitcourse.scale import SCALE, Scale

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DIGIT_CLASSES = tuple(f"digit {i}" for i in range(10))
SHAPE_CLASSES = ("circle", "square", "triangle", "diamond", "cross", "ring", "star", "heart")
COLOURS: dict[str, tuple[float, float, float]] = {  # bright enough to stand out on the dark backgrounds
    "red": (0.90, 0.10, 0.10), "green": (0.10, 0.75, 0.20), "blue": (0.20, 0.35, 1.00), "yellow": (0.95, 0.90, 0.10),
    "orange": (1.00, 0.55, 0.00), "purple": (0.65, 0.25, 0.90), "cyan": (0.10, 0.85, 0.90), "white": (0.95, 0.95, 0.95),
}
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "retina")
CIFAR_HOST = ("www.cs.toronto.edu", 443)
SHAPES_SIZES = (2000, 500)  # (n_train, n_test) of generated shapes when n_train / n_test are None
MEDMNIST_SIZES = (28, 64, 128, 224)  # the image sizes MedMNIST publishes; 28 and 64 are held in memory
EUROSAT_TEST_FRACTION = 0.2  # EuroSAT has no official split: a fixed random 20 % (seed 0) is the test set
_FALSE = ("", "0", "false", "no", "off")


class DataUnavailable(RuntimeError):
    """A real dataset was required (FULL scale, or ``require=True``) but is neither cached nor downloadable."""


@dataclass
class ImageData:
    """Train and test splits of an image classification dataset, and where they came from.

    ``train`` and ``test`` yield ``(image (C, S, S) float32 in [0, 1], label 0-d int64)``. When the dataset
    is small enough (``in_memory``) the splits are also whole tensors: ``x_train`` (N, C, S, S) float32 in
    [0, 1] and ``y_train`` (N,) int64 (likewise ``x_test``, ``y_test``); for the large datasets (Food-101,
    EuroSAT, MedMNIST at 128 or 224 px) and their stand-ins these are None and images are decoded (or
    drawn) on access.
    """

    train: Dataset = field(repr=False)
    test: Dataset = field(repr=False)
    classes: tuple[str, ...]
    source: str  # "cifar10", "food101", "eurosat", a MedMNIST flag, "digits", "shapes"; "<x>-standin" for a stand-in
    note: str  # the line printed when it was loaded
    x_train: Tensor | None = field(default=None, repr=False)  # (N_train, C, S, S) float32 in [0, 1]
    y_train: Tensor | None = field(default=None, repr=False)  # (N_train,) int64
    x_test: Tensor | None = field(default=None, repr=False)  # (N_test, C, S, S)
    y_test: Tensor | None = field(default=None, repr=False)  # (N_test,)

    @property
    def is_standin(self) -> bool:
        """True when this is NOT the dataset that was asked for."""
        return self.source.endswith("-standin")

    @property
    def is_cifar10(self) -> bool:
        return self.source == "cifar10"

    @property
    def in_memory(self) -> bool:
        return self.x_train is not None


def _tensor_data(x_train: Tensor, y_train: Tensor, x_test: Tensor, y_test: Tensor,
                 classes: tuple[str, ...], source: str, note: str = "") -> ImageData:
    return ImageData(TensorDataset(x_train, y_train), TensorDataset(x_test, y_test), classes, source, note,
                     x_train, y_train, x_test, y_test)


# -- where data lives, and whether the network may be used ------------------------------------------
def cache_dir() -> Path:
    """Where datasets are cached (gitignored): $VIT_DATA_DIR, or data/cache at the repository root."""
    env = os.environ.get("VIT_DATA_DIR")
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[2] / "data" / "cache"


def forced_offline() -> bool:
    """True when ``VIT_OFFLINE`` is set to anything but '', '0', 'false', 'no' or 'off'."""
    return os.environ.get("VIT_OFFLINE", "").strip().lower() not in _FALSE


def online(timeout: float = 1.5, *, host: str = CIFAR_HOST[0], port: int = CIFAR_HOST[1]) -> bool:
    """True when ``VIT_OFFLINE`` is not set and a TCP connection to ``host:port`` opens within ``timeout`` s."""
    if forced_offline():
        return False
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# -- image helpers ---------------------------------------------------------------------------------
def resize_square(x: Tensor, size: int) -> Tensor:
    """Centre-crop (..., C, H, W) to a square and resize it to (..., C, size, size) (bilinear, antialiased)."""
    h, w = x.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = x[..., top:top + side, left:left + side]  # (..., C, side, side)
    if side == size:
        return x
    batch = x.reshape(-1, *x.shape[-3:]).float()  # (B, C, side, side)
    out = F.interpolate(batch, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.clamp(0, 1).reshape(*x.shape[:-2], size, size)  # (..., C, size, size)


def _channels(x: Tensor, channels: int) -> Tensor:
    """(..., C, H, W) -> (..., channels, H, W): grey is repeated, RGB becomes luma 0.299 R + 0.587 G + 0.114 B."""
    c = x.shape[-3]
    if c == channels:
        return x
    if c == 1 and channels == 3:
        return x.repeat_interleave(3, dim=-3)  # (..., 3, H, W)
    if c == 3 and channels == 1:
        luma = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(3, 1, 1)
        return (x * luma).sum(dim=-3, keepdim=True)  # (..., 1, H, W)
    raise ValueError(f"cannot turn {c} channels into {channels}")


def _as_float(x: Tensor) -> Tensor:
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


def _pil_to_square(image, size: int, channels: int) -> Tensor:
    """A PIL image -> (channels, size, size) float32 in [0, 1]: shorter side to ``size``, centre crop."""
    rgb = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)  # (H, W, 3) -> (3, H, W) uint8
    return _channels(resize_square(_as_float(rgb), size), channels)


def _as_label(y: int) -> Tensor:
    return torch.tensor(int(y), dtype=torch.long)  # 0-d int64, like a TensorDataset's labels


# -- generated data: digits, shapes, photos ----------------------------------------------------------
def make_digits(seed: int = 0, image_size: int = 32,
                test_fraction: float = 1 / 6) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """scikit-learn's 1,797 digits as coloured images: (x_train, y_train, x_test, y_test).

    Images (N, 3, image_size, image_size) float32 in [0, 1]: the 8 x 8 ink upsampled (bilinear), a bright
    random colour for the digit on a dark random background. Labels 0..9 int64. ``seed`` picks the
    colours and the split (``test_fraction`` of the images, rounded down, are the test set).
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    g = torch.Generator().manual_seed(seed)
    ink = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0  # (N, 1, 8, 8) in [0, 1]
    ink = F.interpolate(ink, size=(image_size, image_size), mode="bilinear", align_corners=False).clamp(0, 1)
    n = len(ink)
    foreground = 0.5 + 0.5 * torch.rand(n, 3, 1, 1, generator=g)  # a bright colour for the digit
    background = 0.4 * torch.rand(n, 3, 1, 1, generator=g)  # a dark one behind it
    x = background * (1 - ink) + foreground * ink  # (N, 3, S, S)
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(n, generator=g)
    n_test = int(n * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def raw_digits(seed: int = 0, n_test: int = 360) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """scikit-learn's 1,797 digits as they are: (x_train, y_train, x_test, y_test), images (N, 1, 8, 8) float32
    in [0, 1] (ink / 16), labels 0..9 int64. ``seed`` shuffles before the split: the last ``n_test`` of the
    shuffled images are the test set (360: 1,437 left for training, the usual 80 / 20 split). Week 7 trains
    a small ViT and a small CNN on subsets of the 1,437 to measure what an inductive bias is worth."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0  # (N, 1, 8, 8)
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    train, test = order[:-n_test], order[-n_test:]
    return x[train], y[train], x[test], y[test]


# Each shape is a test on (u, v): a pixel's offset from the shape's centre in units of its half-width,
# u to the right and v downwards. All fit in the square |u|, |v| <= 1.
def _circle(u: Tensor, v: Tensor) -> Tensor:
    return u**2 + v**2 <= 1


def _square(u: Tensor, v: Tensor) -> Tensor:
    return torch.maximum(u.abs(), v.abs()) <= 0.8


def _triangle(u: Tensor, v: Tensor) -> Tensor:  # apex up at v = -0.9, base at v = 0.75
    return (v <= 0.75) & (u.abs() <= 0.95 * (v + 0.9) / 1.65)


def _diamond(u: Tensor, v: Tensor) -> Tensor:
    return u.abs() + v.abs() <= 1


def _cross(u: Tensor, v: Tensor) -> Tensor:
    a, b = u.abs(), v.abs()
    return ((a <= 0.3) & (b <= 0.95)) | ((b <= 0.3) & (a <= 0.95))


def _ring(u: Tensor, v: Tensor) -> Tensor:
    r2 = u**2 + v**2
    return (r2 <= 1) & (r2 >= 0.55**2)


def _star(u: Tensor, v: Tensor) -> Tensor:  # five points, one up; radius 1 at a point, 0.38 between
    turn = torch.atan2(u, -v) * (5 / (2 * math.pi)) % 1  # 0 at each point, 0.5 halfway between
    return u**2 + v**2 <= (0.38 + 0.62 * (2 * (turn - 0.5).abs()) ** 2) ** 2


def _heart(u: Tensor, v: Tensor) -> Tensor:  # (x^2 + y^2 - 1)^3 <= x^2 y^3, y pointing up
    x, y = 1.15 * u, 0.12 - 1.12 * v
    return (x**2 + y**2 - 1) ** 3 <= x**2 * y**3


_SHAPE_TESTS: tuple[Callable[[Tensor, Tensor], Tensor], ...] = (
    _circle, _square, _triangle, _diamond, _cross, _ring, _star, _heart)  # in the order of SHAPE_CLASSES
_COLOUR_TABLE = torch.tensor(list(COLOURS.values()))  # (8, 3)


@dataclass
class Shapes:
    """Generated shapes and their attributes; index i of every field describes image i."""

    images: Tensor  # (N, 3, S, S) float32 in [0, 1]
    labels: Tensor  # (N,) int64, index into SHAPE_CLASSES
    colours: Tensor  # (N,) int64, index into tuple(COLOURS)
    centres: Tensor  # (N, 2) float32, the shape's centre (x, y) in pixels from the top-left corner
    sizes: Tensor  # (N,) float32, half the width of the square the shape fits in, in pixels

    @property
    def shape_names(self) -> list[str]:
        return [SHAPE_CLASSES[i] for i in self.labels.tolist()]

    @property
    def colour_names(self) -> list[str]:
        names = tuple(COLOURS)
        return [names[i] for i in self.colours.tolist()]

    def captions(self, template: str = "a drawing of a {colour} {shape}") -> list[str]:
        """One caption per image, e.g. "a drawing of a red circle"."""
        return [template.format(colour=c, shape=s) for c, s in zip(self.colour_names, self.shape_names)]


def _shape_params(n: int, image_size: int, seed: int) -> dict[str, Tensor]:
    """Everything random about n shapes, drawn up front so any image can be drawn alone."""
    g = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % len(SHAPE_CLASSES))[torch.randperm(n, generator=g)]  # balanced classes
    colours = torch.randint(len(COLOURS), (n,), generator=g)
    background = 0.35 * torch.rand(n, 3, generator=g)  # (n, 3) dark, so every colour stands out
    sizes = image_size * (0.22 + 0.18 * torch.rand(n, generator=g))  # half-width: 44-80 % of the image
    centres = sizes[:, None] + (image_size - 2 * sizes[:, None]) * torch.rand(n, 2, generator=g)  # (n, 2) inside
    noise_seeds = torch.randint(2**62, (n,), generator=g)
    return dict(labels=labels, colours=colours, background=background, sizes=sizes, centres=centres,
                noise_seeds=noise_seeds)


def _draw_shapes(p: dict[str, Tensor], image_size: int, noise: float, supersample: int = 2) -> Tensor:
    """Draw the shapes described by ``p`` (a slice of ``_shape_params``): (B, 3, S, S) float32 in [0, 1]."""
    b, s, k = len(p["labels"]), image_size, supersample
    t = (torch.arange(s * k) + 0.5) / k  # (S*k,) sub-pixel centres in pixels
    u = (t[None, None, :] - p["centres"][:, 0, None, None]) / p["sizes"][:, None, None]  # (B, 1, S*k)
    v = (t[None, :, None] - p["centres"][:, 1, None, None]) / p["sizes"][:, None, None]  # (B, S*k, 1)
    u, v = torch.broadcast_tensors(u, v)  # (B, S*k, S*k)
    inside = torch.zeros(b, s * k, s * k, dtype=torch.bool)
    for label, test in enumerate(_SHAPE_TESTS):
        index = (p["labels"] == label).nonzero().squeeze(1)
        if len(index):
            inside[index] = test(u[index], v[index])
    alpha = inside.float().reshape(b, s, k, s, k).mean(dim=(2, 4))[:, None]  # (B, 1, S, S) coverage, antialiased
    foreground = _COLOUR_TABLE[p["colours"]][:, :, None, None]  # (B, 3, 1, 1)
    background = p["background"][:, :, None, None]  # (B, 3, 1, 1)
    images = background + (foreground - background) * alpha  # (B, 3, S, S)
    if noise > 0:
        for i, noise_seed in enumerate(p["noise_seeds"].tolist()):
            g = torch.Generator().manual_seed(noise_seed)
            images[i] += noise * torch.randn(3, s, s, generator=g)
    return images.clamp(0, 1)


def make_shapes(n: int, image_size: int = 32, seed: int = 0, noise: float = 0.0) -> Shapes:
    """``n`` images of coloured geometric shapes: a deterministic classification set with caption attributes.

    Each image shows one shape of ``SHAPE_CLASSES`` (8 classes, as balanced as ``n`` allows: counts differ
    by at most one) in one colour of ``COLOURS``, at a random position and size (its half-width 22-40 % of
    the image, always fully inside) on a random dark background, edges antialiased; ``noise`` adds
    Gaussian pixel noise of that standard deviation before clipping to [0, 1]. The same ``(n, image_size,
    seed, noise)`` always gives the same images.

    Returns:
        Shapes with images (n, 3, image_size, image_size) float32 in [0, 1], labels (n,) int64, and the
        attributes colours, centres, sizes (``shape_names``, ``colour_names``, ``captions()``).
    """
    p = _shape_params(n, image_size, seed)
    chunk = max(1, 2**22 // (2 * image_size) ** 2)  # bound the (B, 2S, 2S) masks to ~4M entries
    images = torch.cat([_draw_shapes({k: t[i:i + chunk] for k, t in p.items()}, image_size, noise)
                        for i in range(0, n, chunk)]) if n else torch.zeros(0, 3, image_size, image_size)
    return Shapes(images, p["labels"], p["colours"], p["centres"], p["sizes"])


class _DrawnShapes(Dataset):
    """make_shapes(n, image_size, seed, noise) as a Dataset that draws image i when asked: no memory per image."""

    def __init__(self, n: int, image_size: int, seed: int, channels: int = 3, noise: float = 0.0):
        self.params = _shape_params(n, image_size, seed)
        self.image_size, self.channels, self.noise = image_size, channels, noise

    def __len__(self) -> int:
        return len(self.params["labels"])

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i = i % len(self)
        one = {k: t[i:i + 1] for k, t in self.params.items()}
        image = _draw_shapes(one, self.image_size, self.noise)[0]  # (3, S, S)
        return _channels(image, self.channels), self.params["labels"][i]


# -- shape scenes: a small object with its mask, on clutter (Weeks 6-8) ------------------------------
SCENE_CLASSES = ("circle", "square", "triangle", "diamond", "cross", "ring")  # 6 of SHAPE_CLASSES
SCENE_SIZES = (6000, 1000)  # (n_train, n_test) of shape_scenes()
SCENE_OBJECT_AREA = (0.10, 0.30)  # the object covers this share of the image (uniform)
SCENE_DISTRACTOR_AREA = (0.05, 0.12)  # the distractor ellipse's share of the image
# Each shape's area at half-width 1 (measured on an 801 x 801 grid), to draw a target area exactly.
_UNIT_AREA = {"circle": 3.1336, "square": 2.5616, "triangle": 1.5659, "diamond": 2.0, "cross": 1.9247,
              "ring": 2.1859}


@dataclass
class ShapeScenes:
    """Generated scenes: one object of a ``SCENE_CLASSES`` shape per image, with its mask, on a textured
    background with clutter and a distractor. Index i of every field describes image i.

    The object is what the label is about; the mask says where it is, so an explanation (an attention
    map, a saliency map) can be scored against it without a human in the loop.
    """

    images: Tensor  # (N, 3, S, S) float32 in [0, 1]
    labels: Tensor  # (N,) int64, index into SCENE_CLASSES
    masks: Tensor  # (N, S, S) float32 in [0, 1]: the share of each pixel the object covers (antialiased)
    centres: Tensor  # (N, 2) float32, the object's centre (x, y) in pixels from the top-left corner
    sizes: Tensor  # (N,) float32, half the width of the square the object fits in, in pixels
    classes: tuple[str, ...] = SCENE_CLASSES

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def area(self) -> Tensor:
        """(N,) the share of the image the object covers."""
        return self.masks.mean(dim=(1, 2))

    def patch_fraction(self, patch_size: int) -> Tensor:
        """(N, h, w): the share of each P x P patch that the object covers (h = w = S / P)."""
        return patch_fraction(self.masks, patch_size)

    def object_patches(self, patch_size: int, threshold: float = 0.5) -> Tensor:
        """(N, h, w) bool: the patches at least ``threshold`` object, the course's definition of "inside"."""
        return self.patch_fraction(patch_size) >= threshold

    def subset(self, index: Tensor | slice) -> ShapeScenes:
        """The scenes at ``index``, every field alike."""
        return ShapeScenes(self.images[index], self.labels[index], self.masks[index], self.centres[index],
                           self.sizes[index], self.classes)


def patch_fraction(masks: Tensor, patch_size: int) -> Tensor:
    """(N, H, W) pixel masks in [0, 1] -> (N, H/P, W/P): the mean of each P x P patch."""
    n, height, width = masks.shape
    if height % patch_size or width % patch_size:
        raise ValueError(f"masks of {height}x{width} pixels do not split into {patch_size}x{patch_size} patches")
    grid = masks.reshape(n, height // patch_size, patch_size, width // patch_size, patch_size)  # (N, h, P, w, P)
    return grid.mean(dim=(2, 4))  # (N, h, w)


def _scene_params(n: int, image_size: int, seed: int) -> dict[str, Tensor]:
    """Everything random about n scenes, drawn up front from one generator."""
    g = torch.Generator().manual_seed(seed)
    s = float(image_size)
    k = len(SCENE_CLASSES)
    labels = (torch.arange(n) % k)[torch.randperm(n, generator=g)]  # balanced classes
    unit = torch.tensor([_UNIT_AREA[c] for c in SCENE_CLASSES])[labels]  # (n,)
    lo, hi = SCENE_OBJECT_AREA
    area = lo + (hi - lo) * torch.rand(n, generator=g)  # (n,) target share of the image
    sizes = (area * s * s / unit).sqrt()  # (n,) half-width that gives that area
    room = (s - 2 * sizes - 1).clamp_min(0)  # keep half a pixel free on each side
    centres = sizes[:, None] + 0.5 + room[:, None] * torch.rand(n, 2, generator=g)  # (n, 2)
    colours = torch.randint(len(COLOURS), (n,), generator=g)
    # The distractor: an elongated ellipse (axis ratio 0.3-0.55, any angle, any colour), placed at the
    # farthest of 6 random points from the object, so that it rarely covers it (the object is drawn on top).
    d_lo, d_hi = SCENE_DISTRACTOR_AREA
    d_area = d_lo + (d_hi - d_lo) * torch.rand(n, generator=g)
    ratio = 0.3 + 0.25 * torch.rand(n, generator=g)
    d_major = (d_area * s * s / (math.pi * ratio)).sqrt()  # (n,) semi-major axis, pixels
    candidates = 2 + (s - 4) * torch.rand(n, 6, 2, generator=g)  # (n, 6, 2)
    far = (candidates - centres[:, None]).norm(dim=-1).argmax(dim=1)  # (n,)
    d_centres = candidates[torch.arange(n), far]  # (n, 2)
    d_angle = math.pi * torch.rand(n, generator=g)
    d_colours = torch.randint(len(COLOURS), (n,), generator=g)
    # The background: a dark base colour, a smooth colour texture (a 4 x 4 random field, upsampled),
    # 8 one- or two-pixel specks of random colours, and pixel noise.
    base = 0.08 + 0.22 * torch.rand(n, 3, generator=g)
    texture = 0.12 * torch.randn(n, 3, 4, 4, generator=g)
    speck_xy = torch.randint(image_size - 1, (n, 8, 2), generator=g)
    speck_size = torch.randint(1, 3, (n, 8), generator=g)
    speck_colour = 0.2 + 0.8 * torch.rand(n, 8, 3, generator=g)
    noise_seeds = torch.randint(2**62, (n,), generator=g)
    return dict(labels=labels, sizes=sizes, centres=centres, colours=colours, d_major=d_major, ratio=ratio,
                d_centres=d_centres, d_angle=d_angle, d_colours=d_colours, base=base, texture=texture,
                speck_xy=speck_xy, speck_size=speck_size, speck_colour=speck_colour, noise_seeds=noise_seeds)


_SCENE_TESTS = tuple(_SHAPE_TESTS[SHAPE_CLASSES.index(c)] for c in SCENE_CLASSES)


def _coverage(inside: Tensor, k: int) -> Tensor:
    """(B, S*k, S*k) bool sub-pixels -> (B, S, S) float coverage."""
    b, n = inside.shape[0], inside.shape[1] // k
    return inside.float().reshape(b, n, k, n, k).mean(dim=(2, 4))


def _draw_scenes(p: dict[str, Tensor], image_size: int, noise: float, supersample: int = 2) -> tuple[Tensor, Tensor]:
    """Draw the scenes of ``p`` (a slice of ``_scene_params``): images (B, 3, S, S), masks (B, S, S)."""
    b, s, k = len(p["labels"]), image_size, supersample
    t = (torch.arange(s * k) + 0.5) / k  # (S*k,) sub-pixel centres in pixels
    x, y = t[None, None, :], t[None, :, None]  # broadcast to (B, S*k, S*k)
    # background: base colour + smooth texture
    texture = F.interpolate(p["texture"], size=(s, s), mode="bicubic", align_corners=False)  # (B, 3, S, S)
    images = p["base"][:, :, None, None] + texture
    for i in range(p["speck_xy"].shape[1]):  # clutter: small specks
        cx, cy, w = p["speck_xy"][:, i, 0], p["speck_xy"][:, i, 1], p["speck_size"][:, i]
        cols, rows = torch.arange(s)[None, None, :], torch.arange(s)[None, :, None]
        box = ((cols >= cx[:, None, None]) & (cols < (cx + w)[:, None, None])
               & (rows >= cy[:, None, None]) & (rows < (cy + w)[:, None, None]))  # (B, S, S)
        images = torch.where(box[:, None], p["speck_colour"][:, i, :, None, None], images)
    # the distractor ellipse
    dx, dy = x - p["d_centres"][:, 0, None, None], y - p["d_centres"][:, 1, None, None]
    cos, sin = p["d_angle"].cos()[:, None, None], p["d_angle"].sin()[:, None, None]
    along, across = dx * cos + dy * sin, -dx * sin + dy * cos
    major = p["d_major"][:, None, None]
    ellipse = (along / major) ** 2 + (across / (major * p["ratio"][:, None, None])) ** 2 <= 1  # (B, S*k, S*k)
    alpha = _coverage(ellipse, k)[:, None]  # (B, 1, S, S)
    images = images + (_COLOUR_TABLE[p["d_colours"]][:, :, None, None] - images) * alpha
    # the object, on top
    u = (x - p["centres"][:, 0, None, None]) / p["sizes"][:, None, None]
    v = (y - p["centres"][:, 1, None, None]) / p["sizes"][:, None, None]
    u, v = torch.broadcast_tensors(u, v)  # (B, S*k, S*k)
    inside = torch.zeros(b, s * k, s * k, dtype=torch.bool)
    for label, test in enumerate(_SCENE_TESTS):
        index = (p["labels"] == label).nonzero().squeeze(1)
        if len(index):
            inside[index] = test(u[index], v[index])
    masks = _coverage(inside, k)  # (B, S, S)
    images = images + (_COLOUR_TABLE[p["colours"]][:, :, None, None] - images) * masks[:, None]
    if noise > 0:
        for i, noise_seed in enumerate(p["noise_seeds"].tolist()):
            g = torch.Generator().manual_seed(noise_seed)
            images[i] += noise * torch.randn(3, s, s, generator=g)
    return images.clamp(0, 1), masks


def make_shape_scenes(n: int, image_size: int = 32, seed: int = 0, noise: float = 0.03) -> ShapeScenes:
    """``n`` scenes, each one object whose shape is the label, with its pixel mask: deterministic per seed.

    Each image shows one shape of ``SCENE_CLASSES`` (6 classes, balanced: counts differ by at most one) in
    one colour of ``COLOURS``, sized so that it covers a share of the image drawn uniformly from
    ``SCENE_OBJECT_AREA`` (10-30 %), fully inside the image. Behind it: a dark background with a smooth
    colour texture, 8 small specks of random colours, and a distractor, an elongated ellipse of any colour
    (5-12 % of the image) placed away from the object (it may touch it; the object is drawn on top).
    Edges are antialiased (2 x 2 supersampling); ``noise`` adds Gaussian pixel noise before clipping.

    Returns:
        ShapeScenes with images (n, 3, S, S) float32 in [0, 1], labels (n,) int64, masks (n, S, S) float32
        in [0, 1] (the object's coverage of each pixel), centres, sizes; ``patch_fraction(P)`` and
        ``object_patches(P)`` give the patch-level truth.
    """
    if image_size < 16:
        raise ValueError(f"image_size={image_size}: scenes need at least 16 x 16 pixels")
    p = _scene_params(n, image_size, seed)
    chunk = max(1, 2**21 // (2 * image_size) ** 2)
    parts = [_draw_scenes({key: t[i:i + chunk] for key, t in p.items()}, image_size, noise)
             for i in range(0, n, chunk)]
    if parts:
        images, masks = torch.cat([a for a, _ in parts]), torch.cat([m for _, m in parts])
    else:
        images, masks = torch.zeros(0, 3, image_size, image_size), torch.zeros(0, image_size, image_size)
    return ShapeScenes(images, p["labels"], masks, p["centres"], p["sizes"])


def shape_scenes(split: str = "test", seed: int = 0, n: int | None = None) -> ShapeScenes:
    """The course's scenes: ``split`` "train" (6,000 images, seed 2 * seed) or "test" (1,000, seed 2 * seed
    + 1), 32 x 32; ``n`` keeps the first n. The shapes models of :mod:`vitcourse.models` were trained on
    ``shape_scenes("train")`` and measured on ``shape_scenes("test")``."""
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}: expected 'train' or 'test'")
    size = SCENE_SIZES[0] if split == "train" else SCENE_SIZES[1]
    scenes = make_shape_scenes(size, 32, seed=2 * seed + (split == "test"))
    return scenes if n is None else scenes.subset(slice(0, n))


# -- textured scenes: the same scenes, each object filled with a texture (Week 7's cue conflict) -------
TEXTURES = ("horizontal stripes", "vertical stripes", "checks", "diagonal stripes", "dots", "grain")
TEXTURE_CONTRAST = 0.55  # a texture's dark pixels keep 1 - this share of the object's colour


@dataclass
class TexturedScenes(ShapeScenes):
    """Shape scenes whose objects are filled with a texture of :data:`TEXTURES`: ``textures`` (N,) int64.

    Texture k is class k's texture in the training data (``textures == labels``), so both the shape and
    the texture tell the class; in a cue-conflict set the texture is another class's, and a model's
    answer shows which cue it follows.
    """

    textures: Tensor | None = None  # (N,) int64, index into TEXTURES

    @property
    def conflict(self) -> Tensor:
        """(N,) bool: the texture names another class than the shape."""
        return self.textures != self.labels

    def subset(self, index: Tensor | slice) -> TexturedScenes:
        """The scenes at ``index``, every field alike."""
        return TexturedScenes(self.images[index], self.labels[index], self.masks[index], self.centres[index],
                              self.sizes[index], self.classes, self.textures[index])


def texture_patterns(textures: Tensor, image_size: int, generator: torch.Generator) -> Tensor:
    """(N,) texture indices -> (N, S, S) patterns in {0, 1}, each at a random phase.

    0 horizontal and 1 vertical stripes (period 4 px), 2 checks (2 x 2 px), 3 diagonal stripes (period 4
    along a diagonal), 4 dots (one pixel in every 3 x 3), 5 grain (each pixel on with probability 1/2).
    None of them changes class under a horizontal flip (the training augmentation): a flipped diagonal is
    still a diagonal.
    """
    n = len(textures)
    phase = torch.randint(0, 12, (n, 2, 1, 1), generator=generator)
    grain = torch.rand(n, image_size, image_size, generator=generator) < 0.5
    r = torch.arange(image_size)[None, :, None] + phase[:, 0]  # (N, S, 1) rows
    c = torch.arange(image_size)[None, None, :] + phase[:, 1]  # (N, 1, S) columns
    r, c = torch.broadcast_tensors(r, c)  # (N, S, S)
    patterns = torch.stack([
        (r // 2) % 2 == 0,
        (c // 2) % 2 == 0,
        (r // 2 + c // 2) % 2 == 0,
        ((r + c) // 2) % 2 == 0,
        (r % 3 == 0) & (c % 3 == 0),
        grain,
    ], dim=1)  # (N, 6, S, S)
    return patterns[torch.arange(n), textures].float()  # (N, S, S)


def make_textured_scenes(n: int, image_size: int = 32, seed: int = 0, conflict: bool = False,
                         noise: float = 0.03) -> TexturedScenes:
    """``make_shape_scenes(n, image_size, seed, noise)`` with every object filled with a texture.

    The scenes are the very same (same objects, colours, clutter, noise; every pixel off the object
    identical); inside the object, where the texture's pattern is off, ``TEXTURE_CONTRAST`` of the object's
    colour is taken away (then clipped to [0, 1]). With ``conflict=False`` the texture is the class's own
    (texture k for shape k); with ``conflict=True`` it is one of the other five classes' (uniformly), never
    the shape's. Deterministic
    per seed; the textures have their own generator, so ``conflict`` changes only the textures.
    """
    plain = make_shape_scenes(n, image_size, seed=seed, noise=noise)
    p = _scene_params(n, image_size, seed)  # the same draw: the objects' colours
    g = torch.Generator().manual_seed(10_007 * seed + 12_345)
    labels = plain.labels
    shift = 1 + torch.randint(0, len(SCENE_CLASSES) - 1, (n,), generator=g)
    textures = (labels + shift) % len(SCENE_CLASSES) if conflict else labels.clone()
    patterns = texture_patterns(textures, image_size, g)  # (N, S, S)
    colour = _COLOUR_TABLE[p["colours"]][:, :, None, None]  # (N, 3, 1, 1)
    darker = TEXTURE_CONTRAST * (1 - patterns)[:, None] * plain.masks[:, None]  # (N, 1, S, S)
    images = plain.images - colour * darker  # the object's colour dimmed where the pattern is off; the rest as is
    return TexturedScenes(images.clamp(0, 1), labels, plain.masks, plain.centres, plain.sizes, SCENE_CLASSES,
                          textures)


def textured_scenes(split: str = "test", seed: int = 0, n: int | None = None, conflict: bool = False) -> TexturedScenes:
    """:func:`shape_scenes` (same split, seed and size) with textured objects (:func:`make_textured_scenes`).

    ``textured_scenes("train")`` trains the ``textures-vit`` and ``textures-cnn`` recipes (texture = class);
    ``textured_scenes("test", conflict=True)`` is the cue-conflict set: each test scene's shape filled with
    another class's texture.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}: expected 'train' or 'test'")
    size = SCENE_SIZES[0] if split == "train" else SCENE_SIZES[1]
    scenes = make_textured_scenes(size, 32, seed=2 * seed + (split == "test"), conflict=conflict)
    return scenes if n is None else scenes.subset(slice(0, n))


def sample_photos(size: int | None = None, names: tuple[str, ...] = PHOTOS) -> list[tuple[str, Tensor]]:
    """scikit-image's colour photographs (shipped with scikit-image, no download) as (name, image) pairs.

    Images are (3, H, W) float32 in [0, 1] at their own size (e.g. astronaut 512 x 512, chelsea 300 x 451),
    or with ``size`` centre-cropped to a square and resized to (3, size, size).
    """
    import skimage.data

    photos = []
    for name in names:
        pixels = getattr(skimage.data, name)()  # (H, W, 3) uint8
        image = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).float() / 255.0  # (3, H, W)
        photos.append((name, resize_square(image, size) if size else image))
    return photos


# -- real datasets ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Real:
    """How to find, fetch and read one real dataset."""

    name: str
    title: str  # as printed, e.g. "CIFAR-10"
    folder: str  # what the cache folder holds once it is there
    host: str  # the download server (HTTPS unless port says otherwise)
    download: str  # what a download costs, for messages
    image_size: int  # the side of an image when image_size is None
    in_memory: bool  # whole splits as tensors (else: Datasets that decode on access)
    standin: str  # "digits" or "shapes"
    is_cached: Callable[[Path], bool]
    fetch: Callable[[Path], None]
    # in memory: root -> (x_train, y_train, x_test, y_test, classes) at native size, x uint8 (N, C, H, W);
    # otherwise: (root, size, channels) -> (train Dataset, test Dataset, classes), images already final
    read: Callable
    port: int = 443


def _read_cifar10(root: Path) -> tuple[Tensor, Tensor, Tensor, Tensor, tuple[str, ...]]:
    """The python-pickle batches of cifar-10-batches-py: x uint8 (N, 3, 32, 32), y int64 (N,)."""
    folder = root / "cifar-10-batches-py"

    def read(names: list[str]) -> tuple[Tensor, Tensor]:
        xs, ys = [], []
        for name in names:
            with open(folder / name, "rb") as f:
                batch = pickle.load(f, encoding="latin1")  # {"data": (n, 3072) uint8, "labels": [n ints]}
            xs.append(batch["data"])
            ys += batch["labels"]
        x = torch.from_numpy(np.concatenate(xs)).reshape(-1, 3, 32, 32)  # rows are R, G, B planes of 32 x 32
        return x, torch.tensor(ys, dtype=torch.long)

    return *read([f"data_batch_{i}" for i in range(1, 6)]), *read(["test_batch"]), CIFAR10_CLASSES


def _cifar10_cached(root: Path) -> bool:
    folder = root / "cifar-10-batches-py"
    return all((folder / f).is_file() for f in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"])


def _fetch_cifar10(root: Path) -> None:
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import download_and_extract_archive

    download_and_extract_archive(CIFAR10.url, str(root), filename=CIFAR10.filename, md5=CIFAR10.tgz_md5)


def _read_food101(root: Path, size: int, channels: int) -> tuple[Dataset, Dataset, tuple[str, ...]]:
    from torchvision.datasets import Food101

    load = dict(transform=partial(_pil_to_square, size=size, channels=channels), target_transform=_as_label)
    train, test = Food101(str(root), split="train", **load), Food101(str(root), split="test", **load)
    return train, test, tuple(train.classes)


def _fetch_food101(root: Path) -> None:
    from torchvision.datasets import Food101

    Food101(str(root), split="test", download=True)


def _read_eurosat(root: Path, size: int, channels: int) -> tuple[Dataset, Dataset, tuple[str, ...]]:
    from torchvision.datasets import EuroSAT

    images = EuroSAT(str(root), transform=partial(_pil_to_square, size=size, channels=channels),
                     target_transform=_as_label)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0)).tolist()
    n_test = int(len(images) * EUROSAT_TEST_FRACTION)
    return Subset(images, order[n_test:]), Subset(images, order[:n_test]), tuple(images.classes)


def _fetch_eurosat(root: Path) -> None:
    from torchvision.datasets import EuroSAT

    EuroSAT(str(root), download=True)


class _ArrayImages(Dataset):
    """uint8 images (N, H, W) or (N, H, W, 3) and labels (N,) -> (image (C, S, S) float32 in [0, 1], label)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, size: int, channels: int):
        self.images, self.labels, self.size, self.channels = images, labels, size, channels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        image = torch.from_numpy(np.array(self.images[i]))  # (H, W) or (H, W, 3) uint8
        image = image[None] if image.ndim == 2 else image.permute(2, 0, 1)  # (C, H, W)
        return _channels(resize_square(_as_float(image), self.size), self.channels), _as_label(self.labels[i])


def _medmnist_file(flag: str, size: int) -> str:
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


def _read_medmnist_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as npz:  # {split}_images uint8 (N, H, W[, 3]), {split}_labels (N, 1)
        return {key: npz[key] for key in ("train_images", "train_labels", "test_images", "test_labels")}


def _nchw(images: np.ndarray) -> Tensor:
    x = torch.from_numpy(images)
    return x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)  # (N, H, W) or (N, H, W, 3) -> (N, C, H, W)


def _medmnist(flag: str, image_size: int | None) -> _Real:
    """The spec of a 2D MedMNIST flag; the .npz of the smallest published size >= image_size is used."""
    import medmnist

    info = medmnist.INFO.get(flag)
    if info is None or flag.endswith("3d"):
        flags = sorted(f for f, i in medmnist.INFO.items() if not f.endswith("3d") and "multi-label" not in i["task"])
        raise ValueError(f"{flag!r} is not a 2D MedMNIST flag; choose one of {flags}")
    if info["task"].startswith("multi-label"):
        raise ValueError(f"{flag} is multi-label ({info['task']}); load_dataset returns one label per image")
    size = image_size or 28
    file_size = next((s for s in MEDMNIST_SIZES if s >= size), MEDMNIST_SIZES[-1])
    folder = f"medmnist/{_medmnist_file(flag, file_size)}"
    classes = tuple(info["label"][str(i)] for i in range(len(info["label"])))

    def fetch(root: Path) -> None:
        (root / "medmnist").mkdir(parents=True, exist_ok=True)
        loader = getattr(medmnist, info["python_class"])
        loader(split="test", download=True, root=str(root / "medmnist"), size=file_size)

    def read_in_memory(root: Path):
        a = _read_medmnist_arrays(root / folder)
        y_train, y_test = (torch.from_numpy(a[k].reshape(-1).astype(np.int64)) for k in ("train_labels", "test_labels"))
        return _nchw(a["train_images"]), y_train, _nchw(a["test_images"]), y_test, classes

    def read_datasets(root: Path, size: int, channels: int):
        a = _read_medmnist_arrays(root / folder)
        return (_ArrayImages(a["train_images"], a["train_labels"].reshape(-1), size, channels),
                _ArrayImages(a["test_images"], a["test_labels"].reshape(-1), size, channels), classes)

    in_memory = file_size <= 64
    return _Real(flag, info["python_class"], folder, "zenodo.org", f"the file {_medmnist_file(flag, file_size)}", 28,
                 in_memory, "shapes", lambda root: (root / folder).is_file(), fetch,
                 read_in_memory if in_memory else read_datasets)


_REAL: dict[str, _Real] = {
    "cifar10": _Real("cifar10", "CIFAR-10", "cifar-10-batches-py", CIFAR_HOST[0], "170 MB", 32, True, "digits",
                     _cifar10_cached, _fetch_cifar10, _read_cifar10),
    "food101": _Real("food101", "Food-101", "food-101", "data.vision.ee.ethz.ch", "5 GB", 224, False, "shapes",
                     lambda root: (root / "food-101" / "meta").is_dir() and (root / "food-101" / "images").is_dir(),
                     _fetch_food101, _read_food101, port=80),
    "eurosat": _Real("eurosat", "EuroSAT", "eurosat/2750", "huggingface.co", "90 MB", 64, False, "shapes",
                     lambda root: (root / "eurosat" / "2750").is_dir(), _fetch_eurosat, _read_eurosat),
}


# -- the loader -------------------------------------------------------------------------------------
def _subset(x: Tensor, y: Tensor, n: int | None, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    if n is None or n >= len(y):
        return x, y
    index = torch.randperm(len(y), generator=generator)[:n]
    return x[index], y[index]


def _subset_dataset(ds: Dataset, n: int | None, generator: torch.Generator) -> Dataset:
    if n is None or n >= len(ds):
        return ds
    return Subset(ds, torch.randperm(len(ds), generator=generator)[:n].tolist())


def _generated(kind: str, n_train: int | None, n_test: int | None, seed: int, size: int, channels: int,
               in_memory: bool = True) -> tuple[ImageData, str]:
    """digits or shapes: (data with source and note still to be set, a description for the note)."""
    depth = f"{channels}x{size}x{size} {'colour' if channels == 3 else 'grey'} images"
    if kind == "digits":
        parts = make_digits(seed, image_size=size)
        description = f"scikit-learn digits as {depth}"
        classes = DIGIT_CLASSES
    else:
        n_train = SHAPES_SIZES[0] if n_train is None else n_train
        n_test = SHAPES_SIZES[1] if n_test is None else n_test
        description = f"generated coloured shapes (make_shapes) as {depth}"
        classes = SHAPE_CLASSES
        if not in_memory:
            train = _DrawnShapes(n_train, size, 2 * seed, channels)
            test = _DrawnShapes(n_test, size, 2 * seed + 1, channels)
            return ImageData(train, test, classes, kind, ""), description
        train, test = make_shapes(n_train, size, seed=2 * seed), make_shapes(n_test, size, seed=2 * seed + 1)
        parts = train.images, train.labels, test.images, test.labels
    g = torch.Generator().manual_seed(seed)
    x_train, y_train = _subset(parts[0], parts[1], n_train, g)
    x_test, y_test = _subset(parts[2], parts[3], n_test, g)
    return _tensor_data(_channels(x_train, channels), y_train, _channels(x_test, channels), y_test,
                        classes, kind), description


def _real(spec: _Real, n_train: int | None, n_test: int | None, seed: int, size: int, channels: int,
          root: Path) -> ImageData:
    """Read a cached real dataset, subset with ``seed``, at ``size`` and ``channels``."""
    g = torch.Generator().manual_seed(seed)
    if not spec.in_memory:
        train, test, classes = spec.read(root, size, channels)
        return ImageData(_subset_dataset(train, n_train, g), _subset_dataset(test, n_test, g), classes, spec.name, "")
    x_train, y_train, x_test, y_test, classes = spec.read(root)
    x_train, y_train = _subset(x_train, y_train, n_train, g)  # subset first: uint8 is 4x smaller than float
    x_test, y_test = _subset(x_test, y_test, n_test, g)
    x_train, x_test = (_channels(resize_square(_as_float(x), size), channels) for x in (x_train, x_test))
    return _tensor_data(x_train, y_train, x_test, y_test, classes, spec.name)


def _spec(name: str, image_size: int | None) -> _Real:
    if name in _REAL:
        return _REAL[name]
    if name.endswith("mnist") or name.endswith("mnist3d"):
        return _medmnist(name, image_size)
    raise ValueError(f"unknown dataset {name!r}: choose cifar10, food101, eurosat, a 2D MedMNIST flag "
                     "(e.g. pathmnist, bloodmnist), digits or shapes")


def load_dataset(name: str, n_train: int | None = None, n_test: int | None = None, *, seed: int = 0,
                 image_size: int | None = None, channels: int = 3, download: bool | None = None,
                 require: bool | None = None, verbose: bool = True) -> ImageData:
    """A dataset by name, the real one when it is cached or can be downloaded, else a labelled stand-in.

    Args:
        name: "cifar10", "food101", "eurosat", a 2D MedMNIST flag ("pathmnist", "bloodmnist", ...; not the
            multi-label "chestmnist"), or the generated "digits" / "shapes".
        n_train, n_test: keep this many random images of each split (None: all; for "shapes" and a shapes
            stand-in None means SHAPES_SIZES = 2,000 / 500).
        seed: for the subsets and for generated data.
        image_size: side S of the square images (None: the dataset's own, 32 for CIFAR-10, digits and
            shapes, 28 for MedMNIST, 64 for EuroSAT, 224 for Food-101). Non-square photos are resized
            (shorter side to S) and centre-cropped; MedMNIST reads the smallest published size >= S.
        channels: 3 (grey images are repeated) or 1 (colour images become luma).
        download: allow a download when the dataset is not cached; None = only at FULL scale.
        require: never use a stand-in, raise DataUnavailable instead; None = only at FULL scale.
        verbose: print the one-line ``note`` saying which data this is.

    Stand-ins (same image size and channels, their own classes): CIFAR-10 -> digits (10 classes);
    Food-101, EuroSAT, MedMNIST -> shapes (8 classes), drawn on access where the real dataset is not held
    in memory.
    """
    name = name.lower()
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if name in ("digits", "shapes"):
        size = image_size or 32
        data, description = _generated(name, n_train, n_test, seed, size, channels)
        data.note = (f"Data: {description} ({len(data.train)} train / {len(data.test)} test, "
                     f"{len(data.classes)} classes), generated offline.")
    else:
        data = _load_real(_spec(name, image_size), n_train, n_test, seed, image_size, channels, download, require)
    if verbose:
        print(data.note)
    return data


def _load_real(spec: _Real, n_train: int | None, n_test: int | None, seed: int, image_size: int | None,
               channels: int, download: bool | None, require: bool | None) -> ImageData:
    root = cache_dir()
    size = image_size or spec.image_size
    required = (SCALE is Scale.FULL) if require is None else require
    allowed = (SCALE is Scale.FULL) if download is None else download
    cached = spec.is_cached(root)
    reason = ""
    if not cached and not allowed:
        reason = (f"{spec.title} is not in {root} and downloads are off (download=False)" if download is False else
                  f"{spec.title} is not in {root} and downloads are off at {SCALE.value.upper()} scale "
                  f"(pass download=True or run at FULL scale to fetch it, {spec.download})")
    elif not cached and forced_offline():
        reason = "offline (VIT_OFFLINE is set)"
    elif not cached and not online(host=spec.host, port=spec.port):
        reason = f"offline (the {spec.title} server {spec.host} did not answer within 1.5 s)"
    if not reason:
        try:
            if not cached:
                root.mkdir(parents=True, exist_ok=True)
                spec.fetch(root)
            data = _real(spec, n_train, n_test, seed, size, channels, root)
            data.note = f"Data: {spec.title} from {root} ({len(data.train)} train / {len(data.test)} test images)."
            return data
        except Exception as exc:  # noqa: BLE001 - any failure means: the real data is not usable here
            if required:
                raise DataUnavailable(_fix(spec, root, f"loading it failed ({type(exc).__name__}: {exc})",
                                           require)) from exc
            reason = f"loading {spec.title} failed ({type(exc).__name__}: {exc})"
    if required:
        raise DataUnavailable(_fix(spec, root, reason, require))
    data, description = _generated(spec.standin, n_train, n_test, seed, size, channels, in_memory=spec.in_memory)
    data.source = f"{spec.standin}-standin"
    data.note = (f"Data: NOT {spec.title}. Using the offline stand-in: {description} ({len(data.train)} train / "
                 f"{len(data.test)} test, {len(data.classes)} classes), because {reason}. "
                 f"Numbers below are about this stand-in, not {spec.title}.")
    return data


def _fix(spec: _Real, root: Path, reason: str, require: bool | None) -> str:
    why = "require=True" if require else "at FULL scale the course never uses a stand-in"
    return (f"{spec.title} is required ({why}) but {reason}. Looked for {root / spec.folder}. "
            f"To fix: on a machine with internet run load_dataset({spec.name!r}, download=True) once "
            f"(it downloads {spec.download} from {spec.host} into the cache folder), then copy the cache folder "
            f"to this machine and set VIT_DATA_DIR to it; or pass require=False to accept a stand-in.")


def load_cifar10(n_train: int | None = None, n_test: int | None = None, seed: int = 0,
                 download: bool | None = None, verbose: bool = True) -> ImageData:
    """CIFAR-10 (or the offline stand-in, digits), optionally a random subset of each split.

    ``load_dataset("cifar10", ...)``: x_train (N, 3, 32, 32) float32 in [0, 1], y_train (N,) int64 in 0..9.

    Args:
        n_train, n_test: keep this many random images of each split (None: all).
        seed: for the subsets and the stand-in's colours and split.
        download: allow a download when CIFAR-10 is not cached; None = only at FULL scale.
        verbose: print which data was loaded and why.
    """
    return load_dataset("cifar10", n_train, n_test, seed=seed, download=download, verbose=verbose)
