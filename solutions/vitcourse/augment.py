"""Week 3 · Mixup, CutMix and cross-entropy on soft targets.

Shapes: B batch, C x H x W images, K classes. Labels are class indices (B,) int64; *soft targets*
are (B, K) float rows of non-negative numbers that sum to 1 (a probability per class).

* **Label smoothing** (Szegedy et al. 2016): the one-hot target becomes ``1 - eps + eps/K`` on the
  true class and ``eps/K`` on every class (PyTorch's ``F.cross_entropy(label_smoothing=eps)``).
* **Mixup** (Zhang et al. 2018): image i becomes ``lam * x_i + (1 - lam) * x_perm[i]`` and its target
  ``lam * y_i + (1 - lam) * y_perm[i]``, with ``lam ~ Beta(alpha, alpha)`` drawn once per batch.
* **CutMix** (Yun et al. 2019): a box of image perm[i] is pasted into image i; the target is mixed
  in the proportion of *pixels*: ``lam = 1 - box area / (H W)``. The box has sides
  ``int(H sqrt(1 - lam))`` x ``int(W sqrt(1 - lam))`` around a uniformly random centre and is clipped
  at the image border, so the area actually pasted can be smaller than drawn: ``lam`` is recomputed
  from the clipped box.

In both, **one** permutation ``perm`` pairs the images *and* the targets: whatever image content
comes from image perm[i] must come with label perm[i]'s share of the target.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def one_hot(labels: Tensor, num_classes: int, smoothing: float = 0.0) -> Tensor:
    """(B,) integer labels (int64, or any integer dtype a loader yields: int32, uint8) -> (B, K) float32
    soft targets on the labels' device, label-smoothed.

    The true class gets ``1 - smoothing + smoothing / K``, every other class ``smoothing / K``; rows
    sum to 1. ``smoothing=0`` gives the plain one-hot rows.
    """
    ### BEGIN SOLUTION [Week 3 · Task 3.3]
    off = smoothing / num_classes
    targets = torch.full((labels.shape[0], num_classes), off, device=labels.device)  # (B, K)
    return targets.scatter_(1, labels.long()[:, None], 1.0 - smoothing + off)
    ### END SOLUTION


def soft_target_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy against soft targets: mean over the batch of ``-sum_k targets[b, k] * log softmax(logits)[b, k]``.

    Args:
        logits: (B, K).
        targets: (B, K), rows summing to 1.

    Returns:
        a float32 0-d tensor, computed in float32 whatever the dtype of the logits (bfloat16 under
        autocast: its 8-bit mantissa would cost the loss about three significant digits). With
        ``targets = one_hot(y, K, eps)`` it equals ``F.cross_entropy(logits, y, label_smoothing=eps)``.
    """
    ### BEGIN SOLUTION [Week 3 · Task 3.3]
    log_probs = logits.float().log_softmax(dim=-1)  # (B, K), in float32 even under autocast
    return -(targets * log_probs).sum(dim=-1).mean()
    ### END SOLUTION


def mixup(images: Tensor, targets: Tensor, lam: float, perm: Tensor) -> tuple[Tensor, Tensor]:
    """Mixup of a batch with a permutation of itself.

    Args:
        images: (B, C, H, W) float.
        targets: (B, K) soft targets.
        lam: the weight of each image's own content, in [0, 1].
        perm: (B,) int64, a permutation of 0..B-1: image i is mixed with image perm[i].

    Returns:
        (lam * images + (1 - lam) * images[perm], lam * targets + (1 - lam) * targets[perm]); new
        tensors, the inputs are not modified (the caller may still need the clean batch).
    """
    ### BEGIN SOLUTION [Week 3 · Task 3.3]
    mixed = lam * images + (1.0 - lam) * images[perm]  # (B, C, H, W)
    return mixed, lam * targets + (1.0 - lam) * targets[perm]
    ### END SOLUTION


def cutmix_box(height: int, width: int, lam: float, generator: torch.Generator | None = None
               ) -> tuple[int, int, int, int]:
    """A random CutMix box ``(top, bottom, left, right)``: rows top..bottom-1, columns left..right-1.

    The box is ``cut_h = int(height * sqrt(1 - lam))`` by ``cut_w = int(width * sqrt(1 - lam))`` pixels,
    so its area is about ``(1 - lam) * height * width``. Its centre ``(cy, cx)`` is uniform over the
    pixels: ``cy = torch.randint(0, height, (1,), generator=generator)``, then ``cx`` likewise over
    ``width``, both from ``generator`` (torch's global generator when it is None, and only then).
    Then ``top = cy - cut_h // 2``, ``bottom = cy + (cut_h + 1) // 2`` (so an unclipped box has exactly
    cut_h rows), likewise for the columns, and all four are clipped to the image (0..height, 0..width).
    A box near the border is therefore smaller than cut_h x cut_w.

    Returns:
        four Python ints.
    """
    ### BEGIN SOLUTION [Week 3 · Task 3.3]
    ratio = math.sqrt(1.0 - lam)  # side ratio: the *area* ratio is 1 - lam
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy = int(torch.randint(0, height, (1,), generator=generator))
    cx = int(torch.randint(0, width, (1,), generator=generator))
    top, bottom = max(cy - cut_h // 2, 0), min(cy + (cut_h + 1) // 2, height)
    left, right = max(cx - cut_w // 2, 0), min(cx + (cut_w + 1) // 2, width)
    return top, bottom, left, right
    ### END SOLUTION


def cutmix(images: Tensor, targets: Tensor, lam: float, perm: Tensor, generator: torch.Generator | None = None
           ) -> tuple[Tensor, Tensor, float]:
    """CutMix of a batch with a permutation of itself: one box (from :func:`cutmix_box` with ``generator``)
    for the whole batch.

    Args:
        images: (B, C, H, W) float.
        targets: (B, K) soft targets.
        lam: the drawn lambda; the box is drawn from it.
        perm: (B,) int64 permutation: image i receives the box's pixels of image perm[i].

    Returns:
        (images with the box pasted, mixed targets, the lambda used), where the lambda used is
        ``1 - box area / (H W)`` of the *clipped* box and the targets are
        ``lam_used * targets + (1 - lam_used) * targets[perm]``. The inputs are not modified.
    """
    ### BEGIN SOLUTION [Week 3 · Task 3.3]
    height, width = images.shape[-2:]
    top, bottom, left, right = cutmix_box(height, width, lam, generator)
    mixed = images.clone()
    mixed[:, :, top:bottom, left:right] = images[perm][:, :, top:bottom, left:right]  # same place, other image
    lam_used = 1.0 - (bottom - top) * (right - left) / (height * width)  # what was really pasted
    return mixed, lam_used * targets + (1.0 - lam_used) * targets[perm], lam_used
    ### END SOLUTION


class MixupCutmix:
    """Per batch: label smoothing, then Mixup or CutMix (timm's ``Mixup`` in 'batch' mode, one permutation).

    Args:
        num_classes: K.
        mixup_alpha: Beta(alpha, alpha) for Mixup's lambda; 0 turns Mixup off.
        cutmix_alpha: the same for CutMix; 0 turns CutMix off.
        prob: the probability that a batch is mixed at all (else it only gets smoothed targets).
        switch_prob: when both are on, the probability of CutMix instead of Mixup.
        label_smoothing: eps of :func:`one_hot`.

    ``mix(images (B, C, H, W), labels (B,))`` returns ``(images, targets (B, K))``. All randomness comes
    from torch's global generators, in this order: one ``torch.rand(1)`` for ``prob`` (only when
    prob < 1), one for the switch (only when both are on), lambda from
    ``torch.distributions.Beta(alpha, alpha).sample()``, ``perm = torch.randperm(B, device=images.device)``,
    then :func:`cutmix_box`'s draws. So a seeded run is reproducible, and a checkpoint that saves the
    generators' states resumes it exactly.
    """

    def __init__(self, num_classes: int, mixup_alpha: float = 0.8, cutmix_alpha: float = 1.0, prob: float = 1.0,
                 switch_prob: float = 0.5, label_smoothing: float = 0.1) -> None:
        self.num_classes = num_classes
        self.mixup_alpha, self.cutmix_alpha = mixup_alpha, cutmix_alpha
        self.prob, self.switch_prob = prob, switch_prob
        self.label_smoothing = label_smoothing

    def __call__(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        ### BEGIN SOLUTION [Week 3 · Task 3.3]
        targets = one_hot(labels, self.num_classes, self.label_smoothing)  # (B, K)
        use_mixup, use_cutmix = self.mixup_alpha > 0, self.cutmix_alpha > 0
        if not (use_mixup or use_cutmix) or (self.prob < 1 and float(torch.rand(1)) >= self.prob):
            return images, targets
        if use_mixup and use_cutmix:
            use_cutmix = float(torch.rand(1)) < self.switch_prob
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        perm = torch.randperm(images.shape[0], device=images.device)  # ONE permutation for images and targets
        if use_cutmix:
            images, targets, _ = cutmix(images, targets, lam, perm)
            return images, targets
        return mixup(images, targets, lam, perm)
        ### END SOLUTION

