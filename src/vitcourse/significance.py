"""Week 8 · Task 8.2: is the difference between two models real? McNemar's test and Wilson intervals.

Shapes: N test images.

A ViT at 0.962 and a CNN at 0.955 on 1,000 test images: is the ViT better, or is that noise? Two tools
answer it, both on the *same* test images:

* a confidence interval for each accuracy. The Wilson score interval (Wilson 1927) stays inside [0, 1]
  and keeps its coverage near 0 and 1, where the textbook p +- z sqrt(p(1-p)/n) (Wald) interval fails:
  with n trials, k successes, p = k/n and z the normal quantile of the confidence,

      centre = (p + z^2 / 2n) / (1 + z^2 / n),   half = z / (1 + z^2 / n) * sqrt(p(1 - p)/n + z^2 / 4n^2)

* McNemar's test (McNemar 1947) for two classifiers on the same images. Only the images where they
  disagree about correctness carry information: b images only model A gets wrong, c only model B. If
  the two were equally good, each of those b + c images would be A's error with probability 1/2, so
  under that hypothesis b ~ Binomial(b + c, 1/2). The exact two-sided p-value is

      p = min(1, 2 * P(X <= min(b, c))),   X ~ Binomial(b + c, 1/2)     (p = 1 when b + c = 0)

  Two accuracies whose intervals overlap can still differ significantly: McNemar pairs the images.

b and c are the sizes of two groups of Week 7's error taxonomy (``vitcourse.errors.error_taxonomy``):
the images only the ViT gets wrong and those only the CNN gets wrong.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from torch import Tensor


def _check(labels: Tensor, *predictions: Tensor) -> None:
    if labels.ndim != 1 or any(p.shape != labels.shape for p in predictions):
        raise ValueError(f"labels {tuple(labels.shape)} and predictions {[tuple(p.shape) for p in predictions]}: "
                         "expected the same (N,) shape for all")


def mcnemar_test(labels: Tensor, pred_a: Tensor, pred_b: Tensor) -> dict[str, float]:
    """McNemar's exact test of "models A and B are equally accurate" on the same images.

    Args:
        labels, pred_a, pred_b: (N,) int64 class indices.

    Returns:
        ``{"b": images only A gets wrong, "c": images only B gets wrong, "p_value": the exact two-sided
        p-value}`` (b and c as floats holding whole numbers; p_value 1.0 when b + c = 0).

    Raises:
        ValueError: when the three are not (N,) tensors of one shape.
    """
    raise NotImplementedError('Week 8 · Task 8.2: implement mcnemar_test in src/vitcourse/significance.py')


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion: ``(low, high)``, with ``0 <= low <= successes / n <= high <= 1``.

    Args:
        successes: k, the number of correct predictions (0 <= k <= n).
        n: the number of trials (> 0).
        confidence: the interval's confidence level, in (0, 1) (0.95: z = 1.96).

    Raises:
        ValueError: for n <= 0, k outside [0, n] or a confidence outside (0, 1).
    """
    raise NotImplementedError('Week 8 · Task 8.2: implement wilson_interval in src/vitcourse/significance.py')
