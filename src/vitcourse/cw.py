"""Week 8 · Task 8.1: the Carlini-Wagner L2 attack (Carlini & Wagner, "Towards Evaluating the Robustness of
Neural Networks", IEEE S&P 2017, arXiv 1608.04644).

Shapes: B batch, C, H, W an image, K classes.

FGSM and PGD (Week 7) ask "what is the worst image within distance eps?". C&W asks the converse: "what
is the *closest* image that the model gets wrong?". For an image x with label y it minimises

    || x' - x ||_2^2  +  c * f(x'),      f(x') = max( Z(x')_y - max_{i != y} Z(x')_i ,  -kappa )

where Z are the logits. f is positive while the model still prefers y and reaches its floor -kappa once
another class leads by kappa (the *confidence*): past that point only the distance term pulls, so the
optimum sits just beyond a margin of kappa. Three devices make it work:

* the box constraint through tanh: optimise w, with ``x' = (tanh(w) + 1) / 2``, which lies in (0, 1)
  whatever w is, so no clipping (whose gradient is 0) is ever needed; w starts at ``atanh(2x - 1)``;
* Adam on w (the paper found it converges fastest of the optimisers it tried);
* a binary search over c, per image: too small a c and the attack never crosses the boundary, too large
  and it crosses far beyond it. Start at ``initial_const``; after each search step an image that
  succeeded lowers its upper bound to c, one that failed raises its lower bound; c becomes the midpoint
  of the bounds once an upper bound exists, else ten times larger.

An adversarial image counts (and is kept if it is the closest yet) when another class leads the true one
by more than kappa: ``max_{i != y} Z_i - Z_y > kappa``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def carlini_wagner_l2(model: nn.Module, images: Tensor, labels: Tensor, *, kappa: float = 0.0,
                      initial_const: float = 1e-2, binary_search_steps: int = 6, steps: int = 100,
                      lr: float = 1e-2) -> Tensor:
    """Untargeted Carlini-Wagner L2: for each image the closest image (in L2) that the model misclassifies with
    confidence ``kappa``.

    Args:
        model: maps images (B, C, H, W) in [0, 1] to logits (B, K) (put any normalisation inside it). It runs in
            eval mode during the attack and gets its own mode back afterwards; its parameters' ``.grad`` are
            left exactly as they were (the gradient is taken with respect to w only).
        images: (B, C, H, W) float in [0, 1].
        labels: (B,) int64, the true classes.
        kappa: the confidence: how far another class must lead the true one (>= 0).
        initial_const: the first c of every image's binary search (> 0).
        binary_search_steps: how many values of c to try per image (>= 1).
        steps: Adam steps per value of c (>= 1).
        lr: Adam's learning rate, on w.

    Returns:
        (B, C, H, W), same dtype and device as ``images``, no graph: per image the closest adversarial image
        found over the whole search (every value of c, every step), or the image itself where none was found.

    Raises:
        ValueError: for images outside [0, 1], labels that are not (B,), kappa < 0, initial_const <= 0, or
            fewer than one search step or Adam step.
    """
    raise NotImplementedError('Week 8 · Task 8.1: implement carlini_wagner_l2 in src/vitcourse/cw.py')
