"""Week 5 · The linear probe: how much of a task is one linear layer away from the features?

Shapes: N training features, M test features, D their width, K classes.

The features stay frozen; only a linear classifier ``nn.Linear(D, K)`` is trained on them (CLIP
section 3.2, DINOv2 section 7). Where k-NN asks "are same-class images close?", the probe asks the
weaker question "are the classes linearly separable?": a direction that separates the classes is
enough, even when other directions of large variance swamp the distances k-NN relies on.

Before training, every feature dimension is standardised with the mean and standard deviation of
the TRAINING features (the test features get the same shift and scale: statistics of the test set
are never used, a test set of a single class must be classified as well as a mixed one).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def linear_probe(train_features: Tensor, train_labels: Tensor, test_features: Tensor,
                 num_classes: int | None = None, steps: int = 300, lr: float = 0.01,
                 weight_decay: float = 1e-4, seed: int = 0) -> Tensor:
    """Train a linear classifier on frozen training features; return its logits on the test features.

    Args:
        train_features: (N, D).
        train_labels: (N,) int64 in 0 .. K-1.
        test_features: (M, D).
        num_classes: K (None: ``train_labels.max() + 1``, so a class absent from the training labels
            still has its output).
        steps: full-batch optimisation steps (AdamW on the cross-entropy of all N features). With the
            defaults (which the hidden tests use) linearly separable features are learned to >= 95 %.
        lr, weight_decay: AdamW's.
        seed: seeds ``torch.manual_seed`` before ``nn.Linear(D, K)`` is initialised.

    Returns:
        (M, K) logits of the trained classifier on the test features, standardised with the
        training features' per-dimension mean and standard deviation (std + 1e-6). No graph.

    It trains whether or not the caller has autograd switched on: called inside ``torch.no_grad()``
    (say, next to a frozen feature extraction) it still learns (``torch.enable_grad()`` around the
    training steps).
    """
    raise NotImplementedError('Week 5 · Task 5.5: implement linear_probe in src/vitcourse/probe.py')
