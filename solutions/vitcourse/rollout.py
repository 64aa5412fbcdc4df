"""Week 6 · Task 6.2: attention rollout (Abnar & Zuidema, "Quantifying Attention Flow in Transformers",
ACL 2020, arXiv 2005.00928).

Shapes: L blocks, B batch, nH heads, T tokens (CLS first), N = h * w patches.

One block's attention says where each token reads from in that block, but what reaches the CLS token
at the end has passed through every block, and through the residual connections around them. Rollout
follows it there: per block,

    A      = fuse the heads of the block's weights (B, nH, T, T) -> (B, T, T): mean, max or min
             (optionally: zero the smallest ``discard_ratio`` of A's entries, never in the CLS column)
    A_hat  = (1 - r) A + r I                 the residual: a token also keeps itself (r = 0.5 in the paper)
    A_hat  = A_hat / A_hat.sum(-1)            rows renormalised: each is a distribution again

and then the blocks are multiplied in order, the latest on the left:

    R = A_hat_L @ ... @ A_hat_2 @ A_hat_1                (B, T, T)

Row 0 of R says how much each input token contributed to the final CLS token; its patch columns,
reshaped to the h x w grid, are the rollout map (:func:`cls_relevance`).

Max and min fusion do not keep rows summing to 1, and discarding takes weight away: that is why the
renormalisation is not optional. Without the identity (r = 0), rollout is the product of the raw
attention matrices, which the paper shows forgets the token's own information too fast.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

HEAD_FUSIONS = ("mean", "max", "min")


def _as_stack(attentions: Tensor | Sequence[Tensor]) -> Tensor:
    """A list of L (B, nH, T, T) tensors, or one (L, B, nH, T, T) tensor -> (L, B, nH, T, T)."""
    stack = attentions if isinstance(attentions, Tensor) else torch.stack(list(attentions))
    if stack.ndim != 5 or stack.shape[-1] != stack.shape[-2]:
        raise ValueError(f"attentions must be (L, B, nH, T, T) (or a list of (B, nH, T, T)); got {tuple(stack.shape)}")
    return stack


def fuse_heads(attention: Tensor, head_fusion: str = "mean") -> Tensor:
    """(..., nH, T, T) -> (..., T, T): the mean, max or min over the heads (dim -3).

    Raises:
        ValueError: for a ``head_fusion`` not in ``HEAD_FUSIONS``.
    """
    ### BEGIN SOLUTION [Week 6 · Task 6.2]
    if head_fusion == "mean":
        return attention.mean(dim=-3)
    if head_fusion == "max":
        return attention.amax(dim=-3)
    if head_fusion == "min":
        return attention.amin(dim=-3)
    raise ValueError(f"head_fusion={head_fusion!r}: expected one of {HEAD_FUSIONS}")
    ### END SOLUTION


def discard_lowest(fused: Tensor, discard_ratio: float) -> Tensor:
    """Zero the smallest entries of each (T, T) matrix of ``fused`` (B, T, T), sparing the CLS column.

    Per image, the k = int(discard_ratio * T * (T - 1)) smallest entries among columns 1 .. T-1 become 0;
    column 0 (how much each token reads from the CLS token) is never touched. Returns a new tensor.
    """
    ### BEGIN SOLUTION [Week 6 · Task 6.2]
    batch, tokens, _ = fused.shape
    k = int(discard_ratio * tokens * (tokens - 1))
    if k == 0:
        return fused.clone()
    rest = fused[:, :, 1:].reshape(batch, -1).clone()  # (B, T * (T - 1)): every column but the CLS one
    lowest = rest.topk(k, dim=-1, largest=False).indices  # (B, k)
    rest.scatter_(-1, lowest, 0.0)
    return torch.cat([fused[:, :, :1], rest.reshape(batch, tokens, tokens - 1)], dim=-1)  # (B, T, T)
    ### END SOLUTION


def attention_rollout(attentions: Tensor | Sequence[Tensor], head_fusion: str = "mean", residual: float = 0.5,
                      discard_ratio: float = 0.0) -> Tensor:
    """Attention rollout through all blocks: (L, B, nH, T, T) (or L tensors (B, nH, T, T)) -> R (B, T, T).

    Per block l = 1 .. L (first block first): fuse the heads (:func:`fuse_heads`), discard the lowest
    entries when ``discard_ratio`` > 0 (:func:`discard_lowest`, never the CLS column), add the residual
    ``A_hat = (1 - residual) * A + residual * I``, divide every row by its sum; then
    ``R = A_hat_L @ ... @ A_hat_1``. Every row of R sums to 1.

    Args:
        attentions: the weights of every block, in block order (e.g. ``AttentionRecorder.weights``).
        head_fusion: "mean", "max" or "min" over the heads.
        residual: r in [0, 1]; 0.5 is the paper's choice (the attention and the skip connection count alike).
        discard_ratio: in [0, 1): the share of each block's fused entries (outside the CLS column) set to 0.

    Raises:
        ValueError: for a bad shape, an unknown ``head_fusion``, ``residual`` outside [0, 1] or
            ``discard_ratio`` outside [0, 1).
    """
    ### BEGIN SOLUTION [Week 6 · Task 6.2]
    stack = _as_stack(attentions)  # (L, B, nH, T, T)
    if not 0.0 <= residual <= 1.0:
        raise ValueError(f"residual={residual}: must lie in [0, 1]")
    if not 0.0 <= discard_ratio < 1.0:
        raise ValueError(f"discard_ratio={discard_ratio}: must lie in [0, 1)")
    if head_fusion not in HEAD_FUSIONS:
        raise ValueError(f"head_fusion={head_fusion!r}: expected one of {HEAD_FUSIONS}")
    tokens = stack.shape[-1]
    eye = torch.eye(tokens, dtype=stack.dtype, device=stack.device)  # (T, T)
    rollout = None
    for attention in stack:  # block 1 first
        fused = fuse_heads(attention, head_fusion)  # (B, T, T)
        if discard_ratio > 0:
            fused = discard_lowest(fused, discard_ratio)
        a_hat = (1 - residual) * fused + residual * eye  # the skip connection keeps a token's own share
        a_hat = a_hat / a_hat.sum(dim=-1, keepdim=True)  # rows are distributions again
        rollout = a_hat if rollout is None else a_hat @ rollout  # the newest block on the left
    return rollout
    ### END SOLUTION


def cls_relevance(matrix: Tensor, grid_size: tuple[int, int], num_prefix_tokens: int = 1) -> Tensor:
    """The CLS token's row of a (B, T, T) relevance matrix, patch columns only, as a map (B, h, w).

    ``matrix[:, 0, num_prefix_tokens:]`` (B, N) in raster order, reshaped to the h x w patch grid
    (``grid_size`` = (h, w), rows first: non-square grids too). Works on a rollout, a relevance matrix of
    Task 6.3, or one block's head-fused attention.

    Raises:
        ValueError: when T - num_prefix_tokens != h * w.
    """
    ### BEGIN SOLUTION [Week 6 · Task 6.2]
    h, w = grid_size
    if matrix.shape[-1] - num_prefix_tokens != h * w:
        raise ValueError(f"{matrix.shape[-1]} tokens minus {num_prefix_tokens} prefix tokens is not a {h}x{w} grid")
    return matrix[:, 0, num_prefix_tokens:].reshape(-1, h, w)  # (B, N) -> (B, h, w), raster order
    ### END SOLUTION
