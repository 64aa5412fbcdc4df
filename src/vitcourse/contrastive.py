"""Week 5 · The contrastive (InfoNCE) loss of CLIP.

Shapes: B pairs in a batch, E the width of the joint embedding.

A batch holds B matching pairs (image i, text i). Both towers map into the same E-dimensional
space; the loss asks every image to pick its own text out of the B texts in the batch, and every
text its own image (Radford et al. 2021, Figure 3):

    I = normalise(image_features)        (B, E)   unit rows
    T = normalise(text_features)         (B, E)
    logits = I @ T^T / temperature       (B, B)   logits[i, j] = cos(image i, text j) / temperature
    loss = ( CE(logits, [0..B-1]) + CE(logits^T, [0..B-1]) ) / 2

CE is the cross-entropy averaged over the batch: row i of ``logits`` scores the B texts for image
i (its label is i), row j of ``logits^T`` scores the B images for text j. The two directions are
averaged, so the loss is symmetric in its two inputs.

Conventions, and how they map to open_clip's ``ClipLoss``: open_clip does NOT normalise inside
the loss (its towers return unit vectors) and takes ``logit_scale = 1 / temperature``. So
``clip_loss(a, b, t) == ClipLoss()(normalise(a), normalise(b), logit_scale=1 / t)``. CLIP learns
the temperature (as ``log(1 / temperature)``, initialised at 1/0.07 and clipped at 100):
``temperature`` may be a 0-d tensor that requires grad, and the gradient flows into it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def clip_logits(image_features: Tensor, text_features: Tensor, temperature: float | Tensor) -> Tensor:
    """Cosine similarities divided by the temperature: (B, E), (B', E) -> (B, B').

    Row i scores every text for image i: ``logits[i, j] = cos(image_i, text_j) / temperature``.
    Both inputs are L2-normalised along E here (``F.normalize``), so any scale they come with is
    ignored. ``temperature`` is a positive float or a 0-d tensor (the gradient reaches it).
    """
    raise NotImplementedError('Week 5 · Task 5.1: implement clip_logits in src/vitcourse/contrastive.py')


def clip_loss(image_features: Tensor, text_features: Tensor, temperature: float | Tensor) -> Tensor:
    """The symmetric InfoNCE loss of CLIP for B matching pairs (image i, text i): a 0-d tensor.

    Args:
        image_features: (B, E), any scale (normalised here).
        text_features: (B, E); row i describes image i.
        temperature: a positive float or 0-d tensor; a tensor that requires grad gets its gradient.

    Returns:
        (cross-entropy of ``clip_logits`` with labels 0..B-1, averaged over the batch
        + the same for the transposed logits) / 2.

    Raises:
        ValueError: when the two batches differ in size (pairs need one text per image; the
            message names both sizes), or when the temperature is not positive.
    """
    raise NotImplementedError('Week 5 · Task 5.1: implement clip_loss in src/vitcourse/contrastive.py')
