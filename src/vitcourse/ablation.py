"""Week 6 · Task 6.5: head ablation: which heads does the model need?

Shapes: B batch, L blocks, nH heads of width Dh, D = nH * Dh, T tokens, K classes.

A block's attention output is ``proj(concat_h head_h)``: the heads' outputs (B, T, Dh) side by side
in one (B, T, D) tensor, head h in features h*Dh .. (h+1)*Dh - 1, then one linear map W^O that mixes
them. Zeroing head h's slice of that tensor, just before ``proj``, removes exactly what head h
contributes to the residual stream (the projection's bias stays: it belongs to no head). A forward
*pre*-hook on ``blocks[l].attn.proj`` can do that without changing the model: it receives proj's
input and may return a replacement. This works on the course's ViT and on timm's alike (both call
the projection ``attn.proj`` and keep ``num_heads`` and ``head_dim`` on ``attn``).

Ablating one head at a time and measuring the loss and the accuracy on a batch ranks the heads by
how much the model relies on each (Michel, Levy & Neubig, "Are Sixteen Heads Really Better than
One?", NeurIPS 2019, do the same for translation and BERT: most heads can go alone).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm


class HeadAblation:
    """Zero some heads' outputs while the context is active; the model is unchanged afterwards.

    ::

        with HeadAblation(model, [(2, 1)]):        # block 2, head 1
            logits = model(images)

    Registers one forward pre-hook on ``model.blocks[l].attn.proj`` per ablated block; the hook returns a
    copy of proj's input (B, T, D) with features h*Dh .. (h+1)*Dh - 1 set to 0 for each ablated head h of
    that block (the input itself is not modified). On exit, also after an exception, every hook is removed.

    Args:
        model: a ViT with ``blocks[l].attn.proj``, ``.num_heads`` and ``.head_dim``.
        heads: (block, head) pairs, 0-based.

    Raises:
        ValueError: for a block or head index out of range (on entry, naming it).
    """

    def __init__(self, model: nn.Module, heads: Iterable[tuple[int, int]]) -> None:
        self.model = model
        self.heads = [(int(b), int(h)) for b, h in heads]
        self._handles: list[Any] = []

    def __enter__(self) -> HeadAblation:
        raise NotImplementedError('Week 6 · Task 6.5: implement HeadAblation.__enter__ in src/vitcourse/ablation.py')

    def __exit__(self, *exc_info: object) -> None:
        raise NotImplementedError('Week 6 · Task 6.5: implement HeadAblation.__exit__ in src/vitcourse/ablation.py')


def _loss_and_accuracy(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int) -> tuple[float, float]:
    loss, correct = 0.0, 0
    for start in range(0, len(labels), batch_size):
        logits = model(images[start:start + batch_size])  # (b, K)
        target = labels[start:start + batch_size]
        loss += float(F.cross_entropy(logits, target, reduction="sum"))
        correct += int((logits.argmax(dim=-1) == target).sum())
    return loss / len(labels), correct / len(labels)


def head_importance(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 256,
                    progress: bool = True) -> dict[str, Any]:
    """Ablate every head alone and measure what it costs on ``images`` (B, C, H, W) with ``labels`` (B,).

    The model runs in eval mode, without gradients; its training flag is restored afterwards and no hook
    is left. The loss is the mean cross-entropy (no label smoothing), the accuracy the share of correct
    argmax predictions.

    Returns:
        ``{"loss": float, "accuracy": float}`` of the intact model, and
        ``"delta_loss"`` (L, nH) float32: loss with head (l, h) ablated minus the intact loss;
        ``"delta_accuracy"`` (L, nH) float32: accuracy with it ablated minus the intact accuracy;
        ``"ranking"``: every (l, h) pair, the largest delta_loss first (ties: lower (l, h) first).
    """
    raise NotImplementedError('Week 6 · Task 6.5: implement head_importance in src/vitcourse/ablation.py')
