"""Week 6 · Task 6.1: every block's attention weights, read with forward hooks, the model left as found.

Shapes: B batch, L blocks, nH heads, T tokens (the prefix tokens, CLS first, then the N = h * w
patches in raster order), K classes.

A ViT's forward pass computes, in every block, the weights softmax(Q K^T / sqrt(Dh)) (B, nH, T, T)
and throws them away. A forward hook (``module.register_forward_hook(fn)``) sees a module's inputs
and outputs each time it runs, so it can keep them, without a line of the model changing. Where to
hook depends on the implementation:

* the course's Week 2 ``VisionTransformer``: ``blocks[i].attn.core`` is Week 1's
  ``ScaledDotProductAttention``, whose forward returns ``(context, weights)``: hook it and keep
  ``output[1]``;
* timm's ``VisionTransformer`` (timm 1.0.31): ``blocks[i].attn`` computes attention with
  ``F.scaled_dot_product_attention`` when its ``fused_attn`` flag is True, and then the weights never
  exist as a tensor. With the flag False it takes the explicit path, ``attn = softmax(q k^T * scale)``
  followed by ``attn = self.attn_drop(attn)``: switch the flag off while recording, hook
  ``attn_drop`` and keep its output, and put the flag back as it was afterwards. Recognise timm's
  attention by those two attributes: this module may not import timm.

A hook that is never removed keeps recording (and holding memory) forever, and a flag left False
makes the model slower for good. :class:`AttentionRecorder` is a context manager so that neither can
happen: whatever the ``with`` block does, even raising, the model comes out exactly as it went in.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class AttentionRecorder:
    """Record every block's attention weights during forward passes; use it as a context manager.

    ::

        with AttentionRecorder(model) as recorder:
            logits = model(images)                 # (B, K), exactly what the model gives without it
        recorder.weights                           # L tensors (B, nH, T, T), in block order
        recorder.stacked()                         # (L, B, nH, T, T)

    ``weights`` holds the weights of the most recent forward pass of ``model`` (each forward pass starts
    the list afresh), each the tensor the block multiplied the values with: in eval mode the softmax
    weights, every row summing to 1 (in training mode, after attention dropout).

    Works on the course's ``VisionTransformer`` (hooks ``blocks[i].attn.core``) and on any timm
    ``VisionTransformer`` (switches each ``blocks[i].attn.fused_attn`` to False on entry, hooks
    ``blocks[i].attn.attn_drop``). On exit, also when the ``with`` block raises (the exception is not
    swallowed), every hook this recorder registered is removed and every ``fused_attn`` flag has the
    value it had on entry (True or False, per block): the model's outputs, hooks and flags are as before.

    Args:
        model: a ViT with ``model.blocks`` (a sequence of blocks, each with an ``attn``).
        detach: True: keep ``weights.detach()`` (no graph: pictures, statistics). False: keep the tensors
            of the graph, so that ``torch.autograd.grad(score, recorder.weights)`` gives dscore/dA
            (Task 6.3).

    Raises:
        TypeError: on entry, when ``model`` has no ``blocks`` or a block's ``attn`` is neither kind
            (the message names the class it found).
    """

    def __init__(self, model: nn.Module, detach: bool = True) -> None:
        self.model = model
        self.detach = detach
        self.weights: list[Tensor] = []
        self._handles: list[Any] = []  # what register_forward_hook returned: each has .remove()
        self._flags: list[tuple[nn.Module, bool]] = []  # (timm attention, its fused_attn on entry)

    def _start(self) -> None:
        self.weights = []  # a new list: one kept from an earlier pass stays as it was

    def _keep(self, weights: Tensor) -> None:
        self.weights.append(weights.detach() if self.detach else weights)

    def __enter__(self) -> AttentionRecorder:
        ### BEGIN SOLUTION [Week 6 · Task 6.1]
        blocks = getattr(self.model, "blocks", None)
        if blocks is None:
            raise TypeError(f"AttentionRecorder needs a ViT with .blocks; got {type(self.model).__name__}")
        targets = []  # (module to hook, takes the weights from its output)
        for i, block in enumerate(blocks):
            attn = getattr(block, "attn", None)
            if hasattr(attn, "core"):  # the course's Attention: core returns (context, weights)
                targets.append((attn.core, lambda output: output[1], None))
            elif hasattr(attn, "fused_attn") and hasattr(attn, "attn_drop"):  # timm's Attention
                targets.append((attn.attn_drop, lambda output: output, attn))
            else:
                raise TypeError(f"block {i}: cannot read attention from {type(attn).__name__}; expected the "
                                "course's Attention (with .core) or timm's (with .fused_attn and .attn_drop)")
        try:
            # Each forward pass of the model starts a new list: a pre-hook on the model itself.
            self._handles.append(self.model.register_forward_pre_hook(lambda module, args: self._start()))
            for module, pick, timm_attn in targets:
                if timm_attn is not None:
                    self._flags.append((timm_attn, timm_attn.fused_attn))
                    timm_attn.fused_attn = False  # the explicit path, where the weights exist
                self._handles.append(module.register_forward_hook(
                    lambda mod, args, output, pick=pick: self._keep(pick(output))))
        except BaseException:
            self._restore()
            raise
        return self
        ### END SOLUTION

    def _restore(self) -> None:
        ### BEGIN SOLUTION [Week 6 · Task 6.1]
        for handle in self._handles:
            handle.remove()
        for attn, flag in self._flags:
            attn.fused_attn = flag
        self._handles, self._flags = [], []
        ### END SOLUTION

    def __exit__(self, *exc_info: object) -> None:
        ### BEGIN SOLUTION [Week 6 · Task 6.1]
        self._restore()  # runs also when the with-block raised; returning None lets the exception through
        ### END SOLUTION

    def stacked(self) -> Tensor:
        """The recorded weights as one tensor (L, B, nH, T, T)."""
        if not self.weights:
            raise RuntimeError("no attention recorded: run the model inside `with AttentionRecorder(model):`")
        return torch.stack(self.weights)


def attention_maps(model: nn.Module, images: Tensor) -> tuple[Tensor, Tensor]:
    """One forward pass without gradients: (logits (B, K), attention (L, B, nH, T, T)).

    The model runs as it is (call ``model.eval()`` first for the softmax weights without dropout).
    """
    with torch.no_grad(), AttentionRecorder(model) as recorder:
        logits = model(images)
    return logits, recorder.stacked()
