"""Week 6 · Task 6.4: what each head does, in four numbers per layer and head.

Shapes: L blocks, B batch, nH heads, T tokens = P prefix tokens (CLS first) + N = h * w patches.

All four statistics look at the patch queries (rows P .. T-1: what a patch reads), average over
those queries and over the images, and return one value per head (nH,):

* **mean attention distance** (Dosovitskiy et al. 2021, Figure 7, "attention distance"): for a patch
  query i, sum over patch keys j of A[i, j] * d(i, j), with d the Euclidean distance between the
  two patches' centres in *pixels* (patch size x distance on the grid). The prefix columns are
  dropped and the weights are NOT renormalised (a query that reads mostly from CLS gets a small
  distance: it integrates little from the image). The ViT paper's analogue of a receptive field.
* **entropy** in nats: of each patch query's weights over the patch keys, renormalised to sum to 1
  (-sum p log p with 0 log 0 = 0): 0 for a head that reads one patch, log N for a uniform one.
* **attention to CLS**: the weight a patch query puts on the CLS token (column 0).
* **sparsity** (this course's choice): the Gini coefficient of each patch query's weights over the
  patch keys (Hurley & Rickard 2009). With the N weights sorted ascending, a_(1) <= ... <= a_(N),

      G = 1 - 2 * sum_k (a_(k) / sum(a)) * (N - k + 1/2) / N

  0 when every patch gets the same weight, (N - 1) / N when one patch gets everything; it does not
  change when the row is scaled, so the CLS share does not enter. Unlike the entropy it is bounded,
  and it answers "is the weight concentrated" rather than "how many patches share it".
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def _check(attention: Tensor, num_prefix_tokens: int) -> None:
    if attention.ndim != 4 or attention.shape[-1] != attention.shape[-2]:
        raise ValueError(f"attention must be (B, nH, T, T); got {tuple(attention.shape)}")
    if not 0 <= num_prefix_tokens < attention.shape[-1]:
        raise ValueError(f"num_prefix_tokens={num_prefix_tokens} for {attention.shape[-1]} tokens")


def patch_distances(grid_size: tuple[int, int], patch_size: int) -> Tensor:
    """(N, N) float32: the distance in pixels between the centres of patches i and j of an h x w grid
    (raster order), i.e. ``patch_size`` times the Euclidean distance of their (row, column) positions."""
    ### BEGIN SOLUTION [Week 6 · Task 6.4]
    h, w = grid_size
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")  # (h, w) each
    centres = torch.stack([rows.flatten(), cols.flatten()], dim=-1).float()  # (N, 2), raster order
    return patch_size * torch.cdist(centres, centres)  # (N, N) pixels
    ### END SOLUTION


def mean_attention_distance(attention: Tensor, grid_size: tuple[int, int], patch_size: int,
                            num_prefix_tokens: int = 1) -> Tensor:
    """(B, nH, T, T) -> (nH,): the mean over images and patch queries of sum_j A[i, j] * d(i, j) in pixels,
    j over the patch keys (prefix columns dropped, not renormalised)."""
    _check(attention, num_prefix_tokens)
    ### BEGIN SOLUTION [Week 6 · Task 6.4]
    p = num_prefix_tokens
    patches = attention[..., p:, p:]  # (B, nH, N, N): patch queries, patch keys
    distance = patch_distances(grid_size, patch_size).to(attention)  # (N, N)
    per_query = (patches * distance).sum(dim=-1)  # (B, nH, N)
    return per_query.mean(dim=(0, 2))  # (nH,)
    ### END SOLUTION


def attention_entropy(attention: Tensor, num_prefix_tokens: int = 1) -> Tensor:
    """(B, nH, T, T) -> (nH,): the mean over images and patch queries of the entropy, in nats, of the weights
    over the patch keys renormalised to sum to 1 (prefix tokens excluded)."""
    _check(attention, num_prefix_tokens)
    ### BEGIN SOLUTION [Week 6 · Task 6.4]
    p = num_prefix_tokens
    patches = attention[..., p:, p:]  # (B, nH, N, N)
    probs = patches / patches.sum(dim=-1, keepdim=True)  # a distribution over the patches
    entropy = -torch.xlogy(probs, probs).sum(dim=-1)  # (B, nH, N), natural log: nats; 0 log 0 = 0
    return entropy.mean(dim=(0, 2))
    ### END SOLUTION


def cls_attention(attention: Tensor, num_prefix_tokens: int = 1) -> Tensor:
    """(B, nH, T, T) -> (nH,): the mean over images and patch queries of the weight on the CLS token (column 0)."""
    _check(attention, num_prefix_tokens)
    ### BEGIN SOLUTION [Week 6 · Task 6.4]
    return attention[..., num_prefix_tokens:, 0].mean(dim=(0, 2))  # (B, nH, N) -> (nH,)
    ### END SOLUTION


def attention_sparsity(attention: Tensor, num_prefix_tokens: int = 1) -> Tensor:
    """(B, nH, T, T) -> (nH,): the mean over images and patch queries of the Gini coefficient of the weights
    over the patch keys (the module docstring gives the formula): 0 uniform, (N - 1) / N one-hot."""
    _check(attention, num_prefix_tokens)
    ### BEGIN SOLUTION [Week 6 · Task 6.4]
    p = num_prefix_tokens
    patches = attention[..., p:, p:]  # (B, nH, N, N)
    n = patches.shape[-1]
    ordered = patches.sort(dim=-1).values  # ascending
    share = ordered / ordered.sum(dim=-1, keepdim=True)
    k = torch.arange(1, n + 1, dtype=attention.dtype, device=attention.device)
    gini = 1 - 2 * (share * (n - k + 0.5) / n).sum(dim=-1)  # (B, nH, N)
    return gini.mean(dim=(0, 2))
    ### END SOLUTION


def head_statistics(attentions: Tensor | Sequence[Tensor], grid_size: tuple[int, int], patch_size: int,
                    num_prefix_tokens: int = 1) -> dict[str, Tensor]:
    """All four statistics for every block: {"distance", "entropy", "cls", "sparsity"}, each (L, nH).

    ``attentions``: L tensors (B, nH, T, T) or one (L, B, nH, T, T), e.g. ``AttentionRecorder.weights``.
    """
    stack = attentions if isinstance(attentions, Tensor) else torch.stack(list(attentions))
    rows: dict[str, list[Tensor]] = {"distance": [], "entropy": [], "cls": [], "sparsity": []}
    for attention in stack:
        rows["distance"].append(mean_attention_distance(attention, grid_size, patch_size, num_prefix_tokens))
        rows["entropy"].append(attention_entropy(attention, num_prefix_tokens))
        rows["cls"].append(cls_attention(attention, num_prefix_tokens))
        rows["sparsity"].append(attention_sparsity(attention, num_prefix_tokens))
    return {name: torch.stack(values) for name, values in rows.items()}
