"""Week 2 · Where is this patch? Position embeddings: fixed tables and resizing a learned one.

Self-attention is permutation-equivariant (Week 1): without a position signal a ViT sees a bag
of patches. The paper adds a *learned* table ``pos_embed`` of shape (1, 1 + N, D) to the tokens
(row 0 belongs to the CLS token, rows 1..N to the patches in raster order). This module holds
the fixed alternatives and the one operation a learned table needs when the resolution changes.

Sinusoidal tables (Vaswani et al. 2017, §3.5), for a position p and dim D (even):

    PE[p, 2i]     = sin(p * omega_i)
    PE[p, 2i + 1] = cos(p * omega_i),      omega_i = 10000 ** (-2i / D),  i = 0 .. D/2 - 1

i.e. sin and cos **interleaved**: columns 0, 2, 4, ... are sines, 1, 3, 5, ... cosines. (MAE's
code, which many projects copy, puts the same numbers in another order, all sines then all
cosines: the week README says why the two are not interchangeable.)

The 2D table (D divisible by 4) gives each axis half the width: for the patch at grid row r,
column c (token r * w + c, raster order)

    PE2D[r * w + c] = concat(PE1D_{D/2}[r], PE1D_{D/2}[c])

the first D/2 columns encode the row, the last D/2 the column (each a 1D table of width D/2).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def sincos_1d(num_positions: int, dim: int) -> Tensor:
    """The fixed 1D sinusoidal table.

    Args:
        num_positions: L, positions 0 .. L-1.
        dim: D, even.

    Returns:
        (L, D) float32 (whatever precision you compute in), sin and cos interleaved as in the
        module docstring.

    Raises:
        ValueError: when D is odd (sin and cos come in pairs).
    """
    ### BEGIN SOLUTION [Week 2 · Task 2.3]
    if dim % 2:
        raise ValueError(f"dim={dim} must be even for a sin/cos table")
    position = torch.arange(num_positions, dtype=torch.float64)[:, None]  # (L, 1)
    omega = 10000.0 ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (D/2,)
    angles = position * omega  # (L, D/2)
    table = torch.stack([angles.sin(), angles.cos()], dim=-1)  # (L, D/2, 2): sin, cos pairs
    return table.reshape(num_positions, dim).float()  # (L, D), interleaved
    ### END SOLUTION


def sincos_2d(grid_h: int, grid_w: int, dim: int) -> Tensor:
    """The fixed 2D sinusoidal table for an h x w patch grid.

    Args:
        grid_h: h, rows of patches.
        grid_w: w, columns of patches.
        dim: D, divisible by 4.

    Returns:
        (h * w, D) float32, in raster order; columns [:D/2] encode the row, [D/2:] the column.

    Raises:
        ValueError: when D is not divisible by 4 (each axis gets a 1D table of even width D/2).
    """
    ### BEGIN SOLUTION [Week 2 · Task 2.3]
    if dim % 4:
        raise ValueError(f"dim={dim} must be divisible by 4 for a 2D sin/cos table")
    rows = sincos_1d(grid_h, dim // 2)  # (h, D/2)
    cols = sincos_1d(grid_w, dim // 2)  # (w, D/2)
    rows = rows[:, None, :].expand(grid_h, grid_w, dim // 2)  # (h, w, D/2): same for a whole row
    cols = cols[None, :, :].expand(grid_h, grid_w, dim // 2)  # (h, w, D/2): same down a column
    return torch.cat([rows, cols], dim=-1).reshape(grid_h * grid_w, dim)  # (h*w, D), raster order
    ### END SOLUTION


def resize_pos_embed(pos_embed: Tensor, new_grid: tuple[int, int], old_grid: tuple[int, int] | None = None,
                     num_prefix_tokens: int = 1) -> Tensor:
    """Resample a learned position table to another patch grid (another image size).

    The prefix rows (the CLS token's) are kept as they are; the grid rows are laid out as the
    (old_h, old_w) image they are, resized with bilinear interpolation (``align_corners=False``,
    no antialiasing: what ``timm.layers.resample_abs_pos_embed(..., interpolation='bilinear',
    antialias=False)`` does) and flattened back in raster order.

    Args:
        pos_embed: (1, num_prefix_tokens + old_h * old_w, D).
        new_grid: (new_h, new_w).
        old_grid: (old_h, old_w); ``None`` means square.
        num_prefix_tokens: rows at the front that are not on the grid (1: the CLS token).

    Returns:
        (1, num_prefix_tokens + new_h * new_w, D).

    Raises:
        ValueError: when ``old_grid`` is None and the number of grid rows is not a square.
    """
    ### BEGIN SOLUTION [Week 2 · Task 2.3]
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]  # CLS apart
    n, dim = grid.shape[1], grid.shape[2]
    if old_grid is None:
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(f"{n} grid positions are not a square grid: pass old_grid=(h, w)")
        old_grid = (side, side)
    old_h, old_w = old_grid
    grid = grid.reshape(1, old_h, old_w, dim).permute(0, 3, 1, 2)  # (1, D, old_h, old_w): an image
    grid = F.interpolate(grid, size=tuple(new_grid), mode="bilinear", align_corners=False)  # (1, D, h, w)
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, dim)  # (1, h*w, D), raster order
    return torch.cat([prefix, grid], dim=1)  # (1, prefix + h*w, D)
    ### END SOLUTION
