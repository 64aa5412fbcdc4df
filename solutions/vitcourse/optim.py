"""Week 3 · AdamW with parameter groups: weight decay only where it means something.

AdamW (Loshchilov & Hutter 2019) shrinks every decayed weight w by ``lr * weight_decay * w`` each
step, separately from the gradient step. That is a prior towards small *weight matrices*: it
keeps the linear maps (and so the attention logits and the MLP's activations) from growing.
On other parameters it is harmful or meaningless:

* biases and the LayerNorm gain/shift: one number per channel, pulling a LayerNorm gain towards
  0 switches the channel off instead of regularising anything;
* ``pos_embed``, ``cls_token``, ``dist_token``: learned *embeddings*, not maps; decaying them
  pulls every position (or the class token) towards the zero vector.

So the parameters are split in two groups. The rule (timm's ``param_groups_weight_decay`` with
``no_weight_decay_list=("pos_embed", "cls_token", "dist_token")``):

* no decay: every parameter with ``ndim <= 1`` (biases, norm weights), every parameter whose name
  ends in ``.bias``, and every parameter whose own name (the part after the last dot) is one of
  ``NO_WEIGHT_DECAY``;
* decay: every other parameter (weight matrices, convolution kernels);
* frozen parameters (``requires_grad=False``, e.g. a linear probe's backbone) are in neither group.
"""

from __future__ import annotations

import torch
from torch import nn

NO_WEIGHT_DECAY = ("pos_embed", "cls_token", "dist_token")


def param_groups(model: nn.Module, weight_decay: float,
                 no_weight_decay: tuple[str, ...] = NO_WEIGHT_DECAY) -> list[dict]:
    """Split ``model``'s trainable parameters into a no-decay and a decay group (the rule above).

    Args:
        model: any module.
        weight_decay: the decay group's ``weight_decay``.
        no_weight_decay: parameter names (the last part of the dotted name) never decayed.

    Returns:
        ``[{"params": [...], "weight_decay": 0.0}, {"params": [...], "weight_decay": weight_decay}]``:
        the no-decay group first, each group's parameters in ``model.named_parameters()`` order; a group
        with no parameters is left out. Ready for ``torch.optim.AdamW(groups, lr=...)``.
    """
    ### BEGIN SOLUTION [Week 3 · Task 3.2]
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue  # frozen: no optimizer state, no update
        own_name = name.rsplit(".", 1)[-1]
        if param.ndim <= 1 or name.endswith(".bias") or own_name in no_weight_decay:
            no_decay.append(param)
        else:
            decay.append(param)
    groups = [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]
    return [group for group in groups if group["params"]]
    ### END SOLUTION


def make_adamw(model: nn.Module, lr: float, weight_decay: float = 0.05, betas: tuple[float, float] = (0.9, 0.999),
               fused: bool | None = None) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`. ``fused`` (one kernel for all parameters) defaults to True when
    the model is on a CUDA device, where it is the fastest implementation."""
    if fused is None:
        fused = next(model.parameters()).is_cuda
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=betas, fused=fused or None)
