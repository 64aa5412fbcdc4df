"""Batches that live on the device: an in-memory image dataset, shuffled, sharded and augmented a whole
batch at a time.

CIFAR-10 is 50,000 x 3 x 32 x 32 bytes = 150 MB, a sliver of a GPU's memory. Kept there as uint8 and
augmented on the GPU, one call per batch, it needs no DataLoader worker processes and no host-to-device
copies, which otherwise starve a fast GPU at this image size. On the CPU the same code runs the SMOKE
recipes (digits).

Shapes: N images, B batch, C x H x W.

Augmentations here take a batch (B, C, H, W) (uint8 in 0..255 or float in [0, 1]) and return one of
the same shape, dtype and device, drawing a *different* random transform for every image from torch's
generator on that device:

* :func:`random_shift`: translate by up to ``max_shift`` pixels in each direction (pad, then a random
  crop: the classic CIFAR "pad 4, crop 32" when ``padding_mode="reflect"`` and ``max_shift=4``);
* :func:`random_hflip`: mirror half the images (not for digits: a mirrored 2 is not a digit);
* :class:`RandAugmentBatch`: torchvision's ``RandAugment`` (Cubuk et al. 2020), applied to ``groups``
  slices of the batch so each slice draws its own two operations.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

Augment = Callable[[Tensor], Tensor]


def random_shift(images: Tensor, max_shift: int, padding_mode: str = "constant") -> Tensor:
    """Shift every image by its own random (dy, dx), each uniform in -max_shift..max_shift.

    Pads by ``max_shift`` on every side (``padding_mode``: "constant" (zeros), "reflect" or "replicate"),
    then crops the original size at a random offset; done for the whole batch with one gather.
    """
    if max_shift <= 0:
        return images
    batch, channels, height, width = images.shape
    dtype = images.dtype
    padded = F.pad(images.float(), (max_shift,) * 4, mode=padding_mode)  # (B, C, H + 2s, W + 2s)
    offset_y = torch.randint(0, 2 * max_shift + 1, (batch, 1), device=images.device)
    offset_x = torch.randint(0, 2 * max_shift + 1, (batch, 1), device=images.device)
    rows = offset_y + torch.arange(height, device=images.device)  # (B, H): the rows each image keeps
    cols = offset_x + torch.arange(width, device=images.device)  # (B, W)
    b = torch.arange(batch, device=images.device)[:, None, None, None]
    c = torch.arange(channels, device=images.device)[None, :, None, None]
    shifted = padded[b, c, rows[:, None, :, None], cols[:, None, None, :]]  # (B, C, H, W)
    return shifted.to(dtype)


def random_hflip(images: Tensor, p: float = 0.5) -> Tensor:
    """Mirror each image left-right with probability ``p``."""
    flip = torch.rand(images.shape[0], device=images.device) < p  # (B,)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


class RandAugmentBatch:
    """torchvision ``v2.RandAugment(num_ops, magnitude)`` on ``groups`` equal slices of a batch.

    One call of RandAugment on a batch tensor applies the *same* operations to every image; slicing the
    batch lets each slice draw its own, for the price of ``groups`` calls.
    """

    def __init__(self, num_ops: int = 2, magnitude: int = 9, groups: int = 16) -> None:
        from torchvision.transforms import v2

        self.transform = v2.RandAugment(num_ops=num_ops, magnitude=magnitude)
        self.groups = groups

    def __call__(self, images: Tensor) -> Tensor:
        size = math.ceil(images.shape[0] / self.groups)
        return torch.cat([self.transform(part) for part in images.split(size)])


def compose(*augments: Augment | None) -> Augment | None:
    """The augmentations applied left to right (Nones skipped); None when there are none."""
    steps = [a for a in augments if a is not None]
    if not steps:
        return None

    def run(images: Tensor) -> Tensor:
        for step in steps:
            images = step(images)
        return images

    return run


def channel_stats(images: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and standard deviation of (N, C, H, W) images in [0, 1] (uint8 is divided by 255),
    each (C,) float32."""
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    return x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))


class DeviceBatches:
    """Batches of an in-memory dataset, on ``device``: ``for images, labels in batches``.

    Args:
        images: (N, C, H, W), uint8 (0..255) or float ([0, 1]); moved to ``device`` once.
        labels: (N,) int64.
        batch_size: B (per process under DDP).
        shuffle: a new order every epoch, from ``torch.randperm(N)`` on torch's CPU generator (so a
            seeded run is reproducible and a checkpoint of the generator resumes it).
        drop_last: skip a last batch shorter than B.
        augment: applied to each batch before normalising (on the device, in the images' dtype).
        mean, std: (C,) per-channel statistics of [0, 1] images; each batch comes out as
            ``(x / 255 or x - mean) / std`` float32. None: no normalisation (just [0, 1] floats).
        channels_last: return the batches in channels-last memory format (faster convolutions).
        rank, world_size: under DDP, process ``rank`` gets every ``world_size``-th image of the order
            (and with ``shuffle`` the order is cut to a multiple of ``world_size``, so every process
            takes the same number of steps). All processes must draw the same order: seed them alike.
    """

    def __init__(self, images: Tensor, labels: Tensor, batch_size: int, *, shuffle: bool = False,
                 drop_last: bool = False, augment: Augment | None = None, mean: Sequence[float] | Tensor | None = None,
                 std: Sequence[float] | Tensor | None = None, device: torch.device | str = "cpu",
                 channels_last: bool = False, rank: int = 0, world_size: int = 1) -> None:
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.augment, self.channels_last = augment, channels_last
        self.rank, self.world_size = rank, world_size
        shape = (1, -1, 1, 1)
        self.mean = None if mean is None else torch.as_tensor(mean, dtype=torch.float32, device=self.device).view(shape)
        self.std = None if std is None else torch.as_tensor(std, dtype=torch.float32, device=self.device).view(shape)

    def _per_rank(self) -> int:
        n = len(self.labels)
        if self.shuffle:
            return n // self.world_size
        return len(range(self.rank, n, self.world_size))

    def __len__(self) -> int:
        n = self._per_rank()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def order(self) -> Tensor:
        """This process's indices for one epoch (draws from the CPU generator when shuffling)."""
        n = len(self.labels)
        if self.shuffle:
            order = torch.randperm(n)[: n - n % self.world_size]  # the same on every rank, then sharded
        else:
            order = torch.arange(n)
        return order[self.rank::self.world_size].to(self.device)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        order = self.order()
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start:start + self.batch_size]
            images = self.images[index]  # (B, C, H, W), still uint8 or float
            if self.augment is not None:
                images = self.augment(images)
            images = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
            if self.mean is not None:
                images = (images - self.mean) / self.std
            if self.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            yield images, self.labels[index]
