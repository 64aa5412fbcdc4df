"""Week 1 · The Engine Room: scaled dot-product and multi-head attention.

Shapes use the paper's names: B batch, nH heads, Lq / Lk query / key lengths,
D = dim, Dh = D / nH (head_dim).

Mask convention (the same as ``torch.nn.functional.scaled_dot_product_attention``
with a boolean mask): ``True`` / ``1`` means *attend*, ``False`` / ``0`` means
*padding, ignore*. The mask has shape (B, 1, 1, Lk), or any shape that broadcasts
to (B, nH, Lq, Lk).

An optional additive ``bias`` (any shape that broadcasts to (B, nH, Lq, Lk)) is added
to the scaled scores before the mask and the softmax, as a float ``attn_mask`` is in
``F.scaled_dot_product_attention``. Week 4 passes Swin's relative position bias and its
0 / -100 shifted-window mask through it.

Rules of the week: no Python loop over the sequence (everything is batched matrix
algebra; ``torch.einsum`` is encouraged), and no ``torch.nn.MultiheadAttention`` or
``F.scaled_dot_product_attention`` inside this file: those are what the tests
compare you against.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

# Masked scores are *set* to this value before the softmax (not added to), so a
# masked key gets exp(-1e9 - max) = 0 weight. -inf would give NaN on rows where
# every key is masked; -1e9 gives those rows a uniform (harmless) distribution.
MASK_VALUE = -1e9


class ScaledDotProductAttention(nn.Module):
    """softmax(Q K^T / sqrt(Dh)) V over pre-projected, per-head tensors.

    Args:
        head_dim: Dh, the size of one head's query/key vectors; sets the scale 1/sqrt(Dh).
        dropout: probability of zeroing an attention weight (after the softmax, training only).
    """

    def __init__(self, head_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        raise NotImplementedError('Week 1 · Task 1.1: implement ScaledDotProductAttention.__init__ in src/vitcourse/attention.py')

    def forward(
        self, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None = None, bias: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Attend from every query to every key.

        Args:
            query: (B, nH, Lq, Dh)
            key:   (B, nH, Lk, Dh)
            value: (B, nH, Lk, Dv)
            mask:  optional, broadcastable to (B, nH, Lq, Lk), usually (B, 1, 1, Lk);
                   True/1 = attend, False/0 = ignore.
            bias:  optional float, broadcastable to (B, nH, Lq, Lk): added to the *scaled*
                   scores Q K^T / sqrt(Dh), before the mask and the softmax.

        Returns:
            context: (B, nH, Lq, Dv), the attention-weighted sum of the values.
            weights: (B, nH, Lq, Lk), the weights actually applied to the values:
                     each row sums to 1 in eval mode; in training mode the dropped
                     entries are 0 and the survivors are scaled by 1/(1-p).
        """
        raise NotImplementedError('Week 1 · Task 1.1: implement ScaledDotProductAttention.forward in src/vitcourse/attention.py')


class MultiHeadAttention(nn.Module):
    """Multi-head attention: nH scaled dot-product attentions in parallel on D/nH-sized slices.

    Submodules (their names are the contract the tests load weights through):
        w_q, w_k, w_v: nn.Linear(dim, dim), the query/key/value projections W^Q, W^K, W^V
        w_o:           nn.Linear(dim, dim), the output projection W^O
        attention:     ScaledDotProductAttention(head_dim, dropout)

    Args:
        dim: D, the token width.
        num_heads: nH; must divide dim.
        dropout: dropout on the attention weights.
    """

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        raise NotImplementedError('Week 1 · Task 1.2: implement MultiHeadAttention.__init__ in src/vitcourse/attention.py')

    def split_heads(self, x: Tensor) -> Tensor:
        """(B, L, D) -> (B, nH, L, Dh): head h gets features h*Dh ... (h+1)*Dh - 1."""
        raise NotImplementedError('Week 1 · Task 1.2: implement MultiHeadAttention.split_heads in src/vitcourse/attention.py')

    def merge_heads(self, x: Tensor) -> Tensor:
        """(B, nH, L, Dh) -> (B, L, D): the inverse of split_heads."""
        raise NotImplementedError('Week 1 · Task 1.2: implement MultiHeadAttention.merge_heads in src/vitcourse/attention.py')

    def forward(
        self,
        query: Tensor,
        key: Tensor | None = None,
        value: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Project, split into heads, attend, merge, project back.

        Args:
            query: (B, Lq, D)
            key:   (B, Lk, D); defaults to ``query`` (self-attention)
            value: (B, Lk, D); defaults to ``key``
            mask:  optional (B, 1, 1, Lk); True/1 = attend, False/0 = ignore

        Returns:
            output:  (B, Lq, D)
            weights: (B, nH, Lq, Lk), as returned by ScaledDotProductAttention
        """
        key = query if key is None else key
        value = key if value is None else value
        raise NotImplementedError('Week 1 · Task 1.2: implement MultiHeadAttention.forward in src/vitcourse/attention.py')
