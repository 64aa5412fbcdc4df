"""Week 5 · Frozen features: run a model once over a dataset and keep what it says.

Shapes: N images in the dataset, C x H x W an image, D the width of a feature vector.

Zero-shot classification, k-NN and linear probes all start from the same table: one feature
vector per image, and its label, computed once with the model frozen. Frozen means two things:
the model is in eval mode (dropout off, batch norm uses its running statistics) and no autograd
graph is recorded (``torch.no_grad()``: no memory for activations, features that do not require
grad).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm


def extract_features(model: nn.Module, loader: Iterable[tuple[Tensor, Tensor]],
                     embed: Callable[[Tensor], Tensor] | None = None, device: str | torch.device | None = None,
                     progress: bool = True) -> tuple[Tensor, Tensor]:
    """Features and labels of every image the loader yields, in the loader's order.

    Args:
        model: the network; it is put in eval mode, and every forward pass runs under
            ``torch.no_grad()``, one call of ``embed`` per batch the loader yields.
        loader: yields ``(images (b, C, H, W), labels (b,))`` batches (a DataLoader, shuffled or not;
            the last batch may be smaller).
        embed: what turns a batch of images into features, (b, C, H, W) -> (b, D); None means
            ``model`` itself. Pass e.g. ``clip.encode_image`` or
            ``lambda x: dinov2(pixel_values=x).pooler_output``.
        device: where the images are sent (None: the device of the model's first parameter, CPU
            for a model without parameters, such as a fixed feature map).
        progress: show a tqdm progress bar over the batches.

    Returns:
        features (N, D) float32 on the CPU whatever dtype the model computes in (float16, float64),
        not requiring grad, and labels (N,) int64 on the CPU whatever integer dtype the loader yields:
        row n of both comes from the same image (the labels are the ones the loader yielded with
        the images, so a shuffling loader stays aligned).
    """
    raise NotImplementedError('Week 5 · Task 5.2: implement extract_features in src/vitcourse/features.py')
