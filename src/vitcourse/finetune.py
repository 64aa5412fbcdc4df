"""Week 3 · Fine-tuning a pretrained timm model: a linear probe, or everything.

Two ways to reuse a pretrained backbone on a new dataset (after ``model.reset_classifier(K)`` has
given it a fresh head for the K new classes):

* **linear probe** (feature extraction): every parameter is frozen except the classifier's. Only the
  head learns, on top of fixed features; cheap (no gradients through the backbone), and a direct
  measure of how good the pretrained features are for the new task.
* **full fine-tuning**: every parameter learns, usually with a small learning rate so the
  pretrained features move only as far as the new task needs.

Which parameters are "the head" is the model's business: timm models name it through
``model.get_classifier()``, which returns the classifier module (``head`` in a ViT, ``fc`` in a
ResNet, ``head.fc`` in a ConvNeXt, whose ``head`` also holds a norm layer) or, for a distilled
DeiT, the tuple ``(head, head_dist)``. Freezing means ``requires_grad=False``: the optimizer then
gets no such parameters (:func:`~vitcourse.optim.param_groups` skips them) and backward computes no
gradient for them.
"""

from __future__ import annotations

from torch import nn

FINETUNE_MODES = ("linear_probe", "full")


def classifier_modules(model: nn.Module) -> list[nn.Module]:
    """The module(s) ``model.get_classifier()`` names, as a list (one, or two for a distilled DeiT)."""
    head = model.get_classifier()
    return list(head) if isinstance(head, (tuple, list)) else [head]


def freeze_all_but_head(model: nn.Module) -> nn.Module:
    """Linear probe: ``requires_grad=False`` on every parameter except those of the classifier module(s)
    (:func:`classifier_modules`), which get ``requires_grad=True`` whatever their state before (a model may
    arrive with everything frozen). Returns ``model`` (changed in place)."""
    raise NotImplementedError('Week 3 · Task 3.6: implement freeze_all_but_head in src/vitcourse/finetune.py')


def unfreeze_all(model: nn.Module) -> nn.Module:
    """Full fine-tuning: ``requires_grad=True`` on every parameter. Returns ``model`` (changed in place)."""
    raise NotImplementedError('Week 3 · Task 3.6: implement unfreeze_all in src/vitcourse/finetune.py')


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total): the number of scalar parameters with ``requires_grad=True``, and of all of them.
    A parameter shared by two modules counts once."""
    raise NotImplementedError('Week 3 · Task 3.6: implement count_parameters in src/vitcourse/finetune.py')


def prepare_finetune(model: nn.Module, mode: str) -> nn.Module:
    """``mode="linear_probe"``: :func:`freeze_all_but_head`; ``mode="full"``: :func:`unfreeze_all`. Either
    works on a model in any state (a probed model can then be fully fine-tuned). Returns ``model``.

    Raises:
        ValueError: for any other mode.
    """
    raise NotImplementedError('Week 3 · Task 3.6: implement prepare_finetune in src/vitcourse/finetune.py')
