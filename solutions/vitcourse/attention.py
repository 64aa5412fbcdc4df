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
        ### BEGIN SOLUTION [Week 1 · Task 1.1]
        self.scale = 1.0 / math.sqrt(head_dim)
        self.dropout = nn.Dropout(dropout)
        ### END SOLUTION

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
        ### BEGIN SOLUTION [Week 1 · Task 1.1]
        # Contract the head dimension d: one score per (query i, key j) pair.
        scores = torch.einsum("bhid,bhjd->bhij", query, key) * self.scale  # (B, nH, Lq, Lk)
        if bias is not None:
            scores = scores + bias  # after the scaling: the bias is in softmax units
        if mask is not None:
            scores = scores.masked_fill(~mask.bool(), MASK_VALUE)  # before the softmax
        weights = scores.softmax(dim=-1)  # normalise over the keys: rows sum to 1
        weights = self.dropout(weights)  # after the softmax, before mixing the values
        context = torch.einsum("bhij,bhjd->bhid", weights, value)  # (B, nH, Lq, Dv)
        return context, weights
        ### END SOLUTION


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
        ### BEGIN SOLUTION [Week 1 · Task 1.2]
        if dim % num_heads != 0:
            raise ValueError(f"dim={dim} is not divisible by num_heads={num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads  # Dh
        self.w_q = nn.Linear(dim, dim)
        self.w_k = nn.Linear(dim, dim)
        self.w_v = nn.Linear(dim, dim)
        self.w_o = nn.Linear(dim, dim)
        self.attention = ScaledDotProductAttention(self.head_dim, dropout)
        ### END SOLUTION

    def split_heads(self, x: Tensor) -> Tensor:
        """(B, L, D) -> (B, nH, L, Dh): head h gets features h*Dh ... (h+1)*Dh - 1."""
        ### BEGIN SOLUTION [Week 1 · Task 1.2]
        batch, length, _ = x.shape
        x = x.reshape(batch, length, self.num_heads, self.head_dim)  # (B, L, nH, Dh)
        return x.transpose(1, 2)  # (B, nH, L, Dh)
        ### END SOLUTION

    def merge_heads(self, x: Tensor) -> Tensor:
        """(B, nH, L, Dh) -> (B, L, D): the inverse of split_heads."""
        ### BEGIN SOLUTION [Week 1 · Task 1.2]
        batch, _, length, _ = x.shape
        x = x.transpose(1, 2)  # (B, L, nH, Dh); not contiguous any more
        return x.reshape(batch, length, self.dim)  # (B, L, D); reshape copies when needed
        ### END SOLUTION

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
        ### BEGIN SOLUTION [Week 1 · Task 1.2]
        q = self.split_heads(self.w_q(query))  # (B, nH, Lq, Dh)
        k = self.split_heads(self.w_k(key))  # (B, nH, Lk, Dh)
        v = self.split_heads(self.w_v(value))  # (B, nH, Lk, Dh)
        context, weights = self.attention(q, k, v, mask)  # (B, nH, Lq, Dh), (B, nH, Lq, Lk)
        return self.w_o(self.merge_heads(context)), weights  # (B, Lq, D)
        ### END SOLUTION
