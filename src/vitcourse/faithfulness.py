"""Week 6 · Task 6.6: is a map right? Deletion (faithfulness) and localisation against the object mask.

Shapes: B images (C, H, W), P patch size, a relevance map (B, h, w) over the h x w = N patches,
an object map (B, h, w): the share of each patch the object covers (``ShapeScenes.patch_fraction``).

Two different questions, two kinds of score:

* **Faithfulness: does the model need what the map points at?** The deletion curve (Petsiuk, Das &
  Saenko, RISE, BMVC 2018; here at patch level, as Chefer et al. evaluate ViTs): remove the k most
  relevant patches, most relevant first, by setting their pixels to a baseline (by default each
  image's own per-channel mean: no new edges, no new colour), and measure the accuracy for k = 0 ..
  N. A faithful map makes the accuracy collapse early: a small area under the curve (``deletion_auc``,
  over the fraction of patches removed, in [0, 1]). The map is judged by the model, not by us.
* **Localisation: does the map point at the object?** The pointing game (Zhang et al. 2016): a hit
  when the map's largest patch is an object patch; and the share of the map's mass on object patches.
  A patch is an object patch when the object covers at least ``threshold`` = 50 % of it (a patch that
  merely touches the object does not count: counted that way, every map scores ~1 on these scenes).

A map can localise well and be unfaithful (the model decides from the object's edge, the map covers
its middle) and the other way round: the notebook measures both.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

Baseline = str | float


def _check_maps(relevance: Tensor, images: Tensor | None = None, patch_size: int | None = None) -> None:
    if relevance.ndim != 3:
        raise ValueError(f"relevance must be (B, h, w); got {tuple(relevance.shape)}")
    if images is not None:
        b, _, height, width = images.shape
        h, w = relevance.shape[1:]
        if b != relevance.shape[0] or height != h * patch_size or width != w * patch_size:
            raise ValueError(f"relevance {tuple(relevance.shape)} with patch size {patch_size} does not match "
                             f"images {tuple(images.shape)}")


def deletion_order(relevance: Tensor) -> Tensor:
    """(B, h, w) -> (B, N) int64: patch indices (raster order), the most relevant first; ties in raster order."""
    raise NotImplementedError('Week 6 · Task 6.6: implement deletion_order in src/vitcourse/faithfulness.py')


def delete_patches(images: Tensor, relevance: Tensor, k: int, patch_size: int, baseline: Baseline = "mean") -> Tensor:
    """``images`` (B, C, H, W) with each image's k most relevant patches replaced by the baseline.

    Args:
        images: (B, C, H, W), any value range (the model's input).
        relevance: (B, h, w) with h = H / P, w = W / P.
        k: how many patches to remove, 0 <= k <= N.
        patch_size: P.
        baseline: "mean": every removed pixel becomes its image's mean over (H, W), per channel, computed on
            the original image; a float: that value.

    Returns:
        A new tensor (B, C, H, W); ``images`` is not modified.

    Raises:
        ValueError: for mismatched shapes, k outside 0 .. N, or an unknown baseline string.
    """
    _check_maps(relevance, images, patch_size)
    raise NotImplementedError('Week 6 · Task 6.6: implement delete_patches in src/vitcourse/faithfulness.py')


def default_steps(num_patches: int) -> list[int]:
    """0, 2, 4, ... up to N/2 (where the curves fall), then every N/8 up to N: 0 and N always included."""
    fine = list(range(0, num_patches // 2, max(1, num_patches // 32)))
    coarse = list(range(num_patches // 2, num_patches + 1, max(1, num_patches // 8)))
    return sorted(set(fine + coarse + [num_patches]))


def deletion_curve(model: nn.Module, images: Tensor, labels: Tensor, relevance: Tensor, patch_size: int,
                   steps: Sequence[int] | None = None, baseline: Baseline = "mean",
                   batch_size: int = 256) -> tuple[Tensor, Tensor]:
    """The deletion curve: accuracy after removing the k most relevant patches, for every k in ``steps``.

    Args:
        model: called on (b, C, H, W) batches as it is (eval mode is the caller's business), without grad.
        images: (B, C, H, W); labels: (B,) int64; relevance: (B, h, w).
        steps: increasing k values (default :func:`default_steps`).
        baseline: as in :func:`delete_patches`.

    Returns:
        ks (S,) int64 and accuracy (S,) float32: the share of the B images whose argmax prediction equals
        their label after the ``ks[s]`` most relevant patches were removed.
    """
    _check_maps(relevance, images, patch_size)
    raise NotImplementedError('Week 6 · Task 6.6: implement deletion_curve in src/vitcourse/faithfulness.py')


def deletion_auc(ks: Tensor | Sequence[int], accuracy: Tensor | Sequence[float], num_patches: int) -> float:
    """The area under the deletion curve over the fraction removed, k / N from 0 to 1 (trapezoid rule).

    Raises:
        ValueError: unless ks increase from 0 to ``num_patches`` (the area must cover the whole range).
    """
    raise NotImplementedError('Week 6 · Task 6.6: implement deletion_auc in src/vitcourse/faithfulness.py')


def pointing_game(relevance: Tensor, object_fraction: Tensor, threshold: float = 0.5) -> Tensor:
    """(B,) bool: whether each map's largest patch (the first in raster order on a tie) is an object patch,
    i.e. one the object covers at least ``threshold`` of. Both maps (B, h, w)."""
    _check_maps(relevance)
    raise NotImplementedError('Week 6 · Task 6.6: implement pointing_game in src/vitcourse/faithfulness.py')


def mass_inside(relevance: Tensor, object_fraction: Tensor, threshold: float = 0.5) -> Tensor:
    """(B,) float: the share of each map's total on object patches (covered at least ``threshold``).

    Raises:
        ValueError: for a map with negative values (shares of a mass need a mass), or mismatched shapes.
    """
    _check_maps(relevance)
    raise NotImplementedError('Week 6 · Task 6.6: implement mass_inside in src/vitcourse/faithfulness.py')
