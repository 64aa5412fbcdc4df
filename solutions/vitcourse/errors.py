"""Week 7 · Tasks 7.6-7.7: which cue a model follows, and where two models go wrong.

* Task 7.6, :func:`shape_bias` (Geirhos et al., "ImageNet-trained CNNs are biased towards texture;
  increasing shape bias improves accuracy and robustness", ICLR 2019): on cue-conflict images (the shape
  of one class filled with the texture of another), the share of the decisions that follow the shape
  among the decisions that follow either cue. Decisions for a third class count for neither.
* Task 7.7, :func:`error_taxonomy` and :func:`confusion_matrix`: the test images only the ViT gets wrong,
  only the CNN, both (and both with the same wrong answer); and per model, which class is taken for which.

All inputs are 1-d integer tensors of class indices, one entry per image.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _as_indices(*arrays: Tensor) -> list[Tensor]:
    """1-d int64 tensors of one length, or a ValueError that says what differs."""
    out = [torch.as_tensor(a).long().reshape(-1) if torch.as_tensor(a).dim() <= 1 else None for a in arrays]
    if any(a is None for a in out):
        raise ValueError("expected 1-d tensors of class indices, one entry per image")
    lengths = [len(a) for a in out]
    if len(set(lengths)) > 1:
        raise ValueError(f"one entry per image in each: got lengths {lengths}")
    return out


def shape_bias(predictions: Tensor, shape_labels: Tensor, texture_labels: Tensor) -> float:
    """Geirhos et al.'s shape bias: shape decisions / (shape decisions + texture decisions).

    Only cue-conflict images count, those whose ``shape_labels`` and ``texture_labels`` differ (an image
    whose texture agrees with its shape cannot tell the cues apart). Among them a prediction equal to the
    shape label is a shape decision, one equal to the texture label a texture decision; any other
    prediction is neither and is left out. 1.0: always the shape; 0.0: always the texture.

    Args:
        predictions, shape_labels, texture_labels: (N,) class indices.

    Returns:
        The shape bias in [0, 1], or NaN when no decision followed either cue.

    Raises:
        ValueError: inputs of different lengths or not 1-d.
    """
    ### BEGIN SOLUTION [Week 7 · Task 7.6]
    predictions, shape_labels, texture_labels = _as_indices(predictions, shape_labels, texture_labels)
    conflict = shape_labels != texture_labels  # (N,) bool
    shape = int(((predictions == shape_labels) & conflict).sum())
    texture = int(((predictions == texture_labels) & conflict).sum())
    return shape / (shape + texture) if shape + texture else float("nan")
    ### END SOLUTION


def error_taxonomy(vit_predictions: Tensor, cnn_predictions: Tensor, labels: Tensor) -> dict[str, Tensor]:
    """Where two models' mistakes fall, as sorted (ascending) int64 index tensors into the N images.

    Returns a dict with
        ``"only_vit_wrong"``: the ViT wrong, the CNN right;
        ``"only_cnn_wrong"``: the CNN wrong, the ViT right;
        ``"both_wrong"``: both wrong (whatever they answered);
        ``"same_mistake"``: both wrong with the same wrong class (a subset of ``"both_wrong"``).
    The first three are disjoint; with the images both get right they cover all N.

    Raises:
        ValueError: inputs of different lengths or not 1-d.
    """
    ### BEGIN SOLUTION [Week 7 · Task 7.7]
    vit_predictions, cnn_predictions, labels = _as_indices(vit_predictions, cnn_predictions, labels)
    vit_wrong, cnn_wrong = vit_predictions != labels, cnn_predictions != labels  # (N,) bool each
    both = vit_wrong & cnn_wrong
    index = lambda mask: mask.nonzero().reshape(-1)  # (n,) int64, ascending
    return {"only_vit_wrong": index(vit_wrong & ~cnn_wrong), "only_cnn_wrong": index(cnn_wrong & ~vit_wrong),
            "both_wrong": index(both), "same_mistake": index(both & (vit_predictions == cnn_predictions))}
    ### END SOLUTION


def confusion_matrix(predictions: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """(K, K) int64 counts: entry [t, p] is the number of images of true class t predicted as p (rows: the
    truth, columns: the prediction, as scikit-learn's ``confusion_matrix``); the rows sum to the class
    counts, the diagonal holds the correct answers.

    Raises:
        ValueError: inputs of different lengths or not 1-d, or a class index outside [0, num_classes).
    """
    ### BEGIN SOLUTION [Week 7 · Task 7.7]
    predictions, labels = _as_indices(predictions, labels)
    for name, values in (("predictions", predictions), ("labels", labels)):
        if len(values) and (int(values.min()) < 0 or int(values.max()) >= num_classes):
            raise ValueError(f"{name} hold class indices outside [0, {num_classes})")
    flat = labels * num_classes + predictions  # (N,): row-major index of [t, p]
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    ### END SOLUTION
