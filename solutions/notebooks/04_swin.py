# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Week 4 · Swin Transformer: windows, shifted windows and a hierarchy
#
# Week 2 ended at a wall: a ViT compares every token with every other, so its attention costs
# grow with the *square* of the number of tokens. Liu et al., *Swin Transformer: Hierarchical
# Vision Transformer using Shifted Windows* (ICCV 2021), climbs over it with three ideas:
#
# 1. **Windows.** Cut the token grid into windows of ws x ws tokens and attend inside each window
#    only (W-MSA). For a fixed window the cost is linear in the number of tokens.
# 2. **Shifted windows.** Every second block moves the window grid by half a window (SW-MSA), so
#    tokens near a border now share a window with their neighbours across it. A cyclic shift with
#    `torch.roll` and an attention mask make this cost no more than the regular windows.
# 3. **A hierarchy.** Patch merging halves the resolution and doubles the width between stages:
#    feature maps at 1/4, 1/8, 1/16, 1/32 of the image, like a CNN's.
#
# You write all of it in `swin.py` (Tasks 4.1 to 4.7; in an nbgrader assignment folder:
# `vitcourse/swin.py` next to this notebook), with timm's names, so timm's
# `timm.models.swin_transformer` is the reference you are checked against, weight for weight.
# Then you measure what the windows buy: parameters, FLOPs, latency and memory against a ViT, and
# a short training run of a ViT, a Swin of the same size and a two-stage Swin.
#
# Your window attention calls your **Week 1** `ScaledDotProductAttention` (its additive `bias`
# argument carries the relative position bias and the mask), and the model reuses Week 2's `Mlp`
# and `PatchEmbedding`. In this clone a Week 1 or Week 2 bug therefore shows up in this week's
# checks; the grader runs this week with the reference Weeks 1-2, so it costs no points here, but
# fix it first (`vitgrade check 1`, `vitgrade check 2`).
#
# Each check prints a relative error next to the tolerance it expects. Those checks and the public
# tests (`vitgrade check 4`) are for feedback only; the hidden tests decide the grade.
#
# *At SMOKE scale on the 2-core machine, imports and data take about 6 s; every section
# states its own time (all measured 2026-12-04, under load).*

# %%
# %load_ext autoreload
# %autoreload 2
import math
import time
from functools import cache

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from timm.models import swin_transformer as timm_swin
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from vitcourse.attention import ScaledDotProductAttention
from vitcourse.checks import compare, randomise
from vitcourse.data import load_dataset, sample_photos
from vitcourse.pretrained import load_timm
from vitcourse.profiling import count_flops, count_params, format_profiles, profile_model
from vitcourse.scale import SCALE, scale_banner
from vitcourse.swin import (
    PatchMerging,
    SwinTransformer,
    SwinTransformerBlock,
    WindowAttention,
    relative_position_bias,
    relative_position_index,
    shift_region_labels,
    shifted_window_mask,
    window_partition,
    window_reverse,
)
from vitcourse.vit import Attention, VisionTransformer

print(scale_banner())
torch.manual_seed(0)
NOTEBOOK_START = time.monotonic()


# %% [markdown]
# ## 1. The quadratic wall, in numbers
#
# Swin-T cuts a 224 x 224 image into 4 x 4 patches: a 56 x 56 grid, 3,136 tokens in its first
# stage. Global attention would score every pair: $N^2$ scores per head. In windows of
# 7 x 7 = 49 tokens each token scores only its own window: $N \cdot 49$.
#
# *At SMOKE scale on the 2-core machine: under a second (measured 2026-12-04, under load).*

# %%
print(f"{'image':>9} {'tokens N':>9} {'global N^2':>16} {'windows of 7x7: N*49':>22} {'ratio':>7}")
for side in (224, 448, 896):
    n = (side // 4) ** 2
    print(f"{side:>4}x{side:<4} {n:>9,} {n * n:>16,} {n * 49:>22,} {n / 49:>6.0f}x")

# %% [markdown]
# Doubling the image side multiplies the tokens by 4, the global scores by 16 and the windowed ones
# by 4. The price: a token sees only its window. The rest of the week is about how Swin buys that
# back.
#
# ## 2. Task 4.1: `window_partition` and `window_reverse`
#
# Swin keeps its tokens as a feature map with the channels last, (B, H, W, C). Implement in
# `swin.py`:
# * `window_partition(x, window_size)`: (B, H, W, C) → (B·nW, wh, ww, C). Windows of image 0 first,
#   each image's windows in raster order over the window grid, tokens in raster order inside a
#   window. A `ValueError` that names the sizes when H or W is not a multiple of the window.
# * `window_reverse(windows, window_size, H, W)`: the inverse.
#
# One `reshape`, one `permute`, one `reshape` each, with the shape after each line as a comment.
# `window_size` is an int or an (h, w) pair (timm's functions take pairs).
#
# *At SMOKE scale on the 2-core machine: under a second (measured 2026-12-04, under load).*

# %%
x = torch.randn(2, 8, 12, 3)  # non-square, so a swapped axis shows
compare("window_partition 4x4 vs timm", window_partition(x, 4), timm_swin.window_partition(x, (4, 4)), tol=1e-12)
compare("window_partition (2, 3) vs timm", window_partition(x, (2, 3)), timm_swin.window_partition(x, (2, 3)),
        tol=1e-12)
compare("window_reverse(window_partition(x))", window_reverse(window_partition(x, 4), 4, 8, 12), x, tol=1e-12)
try:
    window_partition(torch.randn(1, 10, 8, 3), 4)
    print("XX  window_partition accepted a 10 x 8 map with 4 x 4 windows: it must raise ValueError")
except ValueError as err:
    print(f"ok  a clear error for a 10 x 8 map: {err}")

# %% [markdown]
# The same function on a photograph, read as a (1, 224, 224, 3) map of pixels: 28 x 28-pixel
# windows, the size of Swin-T's 7 x 7-token windows of 4 x 4-pixel patches.

# %%
photo = sample_photos(size=224, names=("chelsea",))[0][1]  # (3, 224, 224) in [0, 1]
pixels = photo.permute(1, 2, 0)[None]  # (1, 224, 224, 3): channels last, like Swin's maps
tiles = window_partition(pixels, 28)  # (64, 28, 28, 3)

fig, axes = plt.subplots(1, 2, figsize=(11, 5), gridspec_kw={"width_ratios": [1.2, 1]})
axes[0].imshow(photo.permute(1, 2, 0))
for k in range(0, 225, 28):
    axes[0].axhline(k - 0.5, color="w", lw=0.8)
    axes[0].axvline(k - 0.5, color="w", lw=0.8)
axes[0].set_title("8 x 8 windows of 28 x 28 pixels (7 x 7 tokens)")
mosaic = tiles[[0, 1, 2, 8, 9, 10]].reshape(2, 3, 28, 28, 3).permute(0, 2, 1, 3, 4).reshape(56, 84, 3)
axes[1].imshow(mosaic)
axes[1].set_title("window_partition rows 0, 1, 2, 8, 9, 10")
for ax in axes:
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% nbgrader={"grade": true, "grade_id": "task_4_1", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 4.1: the hidden tests run here when your work is graded.
### BEGIN HIDDEN TESTS
from vitgrade.autograde.nbcell import grade_task  # noqa: E402

grade_task("4.1")
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Task 4.2: relative positions
#
# A ViT adds an absolute position to each token. Swin instead adds a learned number to each
# attention score that depends only on where the key sits *relative to* the query:
# $\mathrm{softmax}(QK^\top/\sqrt{d} + B)$, with $B_{ij}$ read from a table with one row per possible
# offset, $(2w_h - 1)(2w_w - 1)$ rows (169 for 7 x 7), and one column per head. The same table serves
# every window.
#
# Implement:
# * `relative_position_index(window_size)`: the (N, N) integer matrix of table rows, token i at
#   $(y_i, x_i) = (i \,/\!/\, w_w,\ i \bmod w_w)$:
#   `index[i, j] = (y_i - y_j + wh - 1) * (2 * ww - 1) + (x_i - x_j + ww - 1)`;
# * `relative_position_bias(table, index)`: (nH, N, N), `bias[h, i, j] = table[index[i, j], h]`.
#
# *At SMOKE scale on the 2-core machine: under a second (measured 2026-12-04, under load).*

# %%
for ws in (2, 7, (3, 5)):
    pair = (ws, ws) if isinstance(ws, int) else ws
    compare(f"relative_position_index{pair} vs timm", relative_position_index(ws).float(),
            timm_swin.get_relative_position_index(*pair).float(), tol=1e-12)
table = torch.randn(9 * 9, 4)
compare("relative_position_bias vs table lookup", relative_position_bias(table, relative_position_index(5)),
        table[relative_position_index(5)].permute(2, 0, 1), tol=1e-12)

index3, index7 = relative_position_index(3), relative_position_index(7)
fig, axes = plt.subplots(1, 3, figsize=(14, 4.3))
axes[0].imshow(index3, cmap="viridis")
for i in range(9):
    for j in range(9):
        axes[0].text(j, i, int(index3[i, j]), ha="center", va="center", fontsize=7, color="w")
axes[0].set(title="relative_position_index(3): 25 table rows", xlabel="key j", ylabel="query i")
for ax, token in zip(axes[1:], (24, 0)):
    ax.imshow(index7[token].reshape(7, 7), cmap="viridis")
    ax.scatter([token % 7], [token // 7], marker="*", s=200, color="r")
    ax.set_title(f"row of query {token} (star), laid out on the 7x7 window")
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# Every diagonal of the left matrix holds one number: the pairs (i, j) with the same offset read the
# same table row. On the right, the centre token and the corner token see their window through
# different parts of the 169-row table: the corner token only ever looks down and right.

# %% nbgrader={"grade": true, "grade_id": "task_4_2", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 4.2.
### BEGIN HIDDEN TESTS
grade_task("4.2")
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Task 4.3: `WindowAttention`
#
# Multi-head self-attention inside each window, as Week 2's `Attention` with two additions: the
# relative position bias, and an optional additive mask (next section) for the nW windows of one
# image. Implement `WindowAttention(dim, num_heads, window_size, qkv_bias, dropout)` with timm's
# names: `relative_position_bias_table` (a parameter, trunc-normal std 0.02),
# `relative_position_index` (a buffer with `persistent=False`: it is computed, not learned, and
# timm's state dicts do not contain it), `qkv`, `proj`, and your **Week 1**
# `ScaledDotProductAttention` as `core`, called with `bias=` the relative bias (1, nH, N, N) plus,
# when given, the mask. Windows arrive image-major (row b·nW + w is window w of image b), so the
# (nW, N, N) mask repeats once per image.
#
# *At SMOKE scale on the 2-core machine: under a second (measured 2026-12-04, under load).*

# %%
reference = randomise(timm_swin.WindowAttention(12, num_heads=3, window_size=4), seed=1)
mine = WindowAttention(12, num_heads=3, window_size=4).eval()
mine.load_state_dict(reference.state_dict(), strict=True)  # fails loudly on a wrong name or shape
windows = torch.randn(2 * 4, 16, 12)  # 2 images x 4 windows of 16 tokens
shift_mask = timm_swin.SwinTransformerBlock(12, (8, 8), 3, window_size=4, shift_size=2).attn_mask  # (4, 16, 16)
with torch.no_grad():
    compare("WindowAttention vs timm, no mask", mine(windows), reference(windows), tol=1e-5)
    compare("WindowAttention vs timm, with the shift mask", mine(windows, shift_mask),
            reference(windows, shift_mask), tol=1e-5)

# %% nbgrader={"grade": true, "grade_id": "task_4_3", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 4.3.
### BEGIN HIDDEN TESTS
grade_task("4.3")
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Task 4.4: shifted windows, the cyclic shift and the mask
#
# Moving the window grid by S = ws // 2 tokens would leave partial windows at the borders. Swin
# instead rolls the whole map by (-S, -S) with `torch.roll`, so the regular window grid of the
# rolled map *is* the shifted grid of the original, with the same number of windows. The windows
# along the bottom and right edge now hold content from both sides of the image, glued together by
# the roll. Those tokens are not neighbours and must not attend to each other: label the regions
# of the rolled map (per axis the bands [0, H-ws), [H-ws, H-S), [H-S, H): up to 9 regions), and
# add -100 to the score of every pair of tokens from different regions. After the attention the
# result is rolled back by (+S, +S).
#
# Implement `shift_region_labels(input_resolution, window_size, shift_size)` (H, W) and
# `shifted_window_mask(input_resolution, window_size, shift_size)` (nW, N, N): 0 within a region,
# -100 across. The mask must equal timm's `SwinTransformerBlock(...).attn_mask`.
#
# *At SMOKE scale on the 2-core machine: about 2 s (measured 2026-12-04, under load).*

# %%
for resolution, ws, s in (((8, 8), 4, 2), ((14, 14), 7, 3), ((12, 12), 4, 2), ((8, 12), 4, 2)):
    expected = timm_swin.SwinTransformerBlock(4, resolution, 1, window_size=ws, shift_size=s).attn_mask
    compare(f"shifted_window_mask{resolution, ws, s} vs timm's attn_mask",
            shifted_window_mask(resolution, ws, s), expected, tol=1e-12)

# Why -100 is enough: every row keeps its own token (a token shares a region with itself), so no row
# is ever fully masked, and a masked pair keeps exp(-100 + score difference) of an unmasked one's weight.
mask_8 = shifted_window_mask((8, 8), 4, 2)  # (4, 16, 16)
print(f"fewest unmasked keys in any row: {int((mask_8 == 0).sum(-1).min())} of 16")
scores = 3 * torch.randn(4, 16, 16, generator=torch.Generator().manual_seed(0))  # scores of spread 3
for dtype in (torch.float32, torch.bfloat16):
    weights = (scores + mask_8).to(dtype).softmax(-1)
    print(f"largest weight of a masked pair, {str(dtype)[6:]}: {float(weights[mask_8 < 0].max()):.1e}")

trap = timm_swin.SwinTransformerBlock(4, (7, 7), 1, window_size=7, shift_size=3)
print(f"timm's silent rule: a 7x7 map with window 7 and shift 3 runs with window {trap.window_size}, "
      f"shift {trap.shift_size}, attn_mask {trap.attn_mask}")

# %% [markdown]
# timm turns the shift off, without a word, along any axis where the map is not larger than the
# window: that map is a single window, and shifting it would only cut it into masked pieces. Your
# block (Task 4.5) follows the same rule, and every shifted check above uses a map larger than its
# window.
#
# The shift and the mask on the photograph, with 8 x 8-pixel tokens: a 28 x 28 token grid, 7 x 7
# windows, S = 3 tokens (24 pixels).

# %%
P_VIS, GRID, WS, SHIFT = 8, 28, 7, 3
rolled = torch.roll(photo, shifts=(-SHIFT * P_VIS, -SHIFT * P_VIS), dims=(1, 2))  # (3, 224, 224)
labels = shift_region_labels((GRID, GRID), WS, SHIFT)  # (28, 28) token labels
mask = shifted_window_mask((GRID, GRID), WS, SHIFT)  # (16, 49, 49)


def window_lines(ax, offset: int = 0, colour: str = "w") -> None:
    """The 7x7-token window grid (in pixels), moved by ``offset`` tokens."""
    for k in range(-1, GRID // WS + 1):
        position = (k * WS + offset) * P_VIS - 0.5
        if 0 < position < GRID * P_VIS:
            ax.axhline(position, color=colour, lw=1)
            ax.axvline(position, color=colour, lw=1)


fig, axes = plt.subplots(1, 4, figsize=(18, 4.6))
axes[0].imshow(photo.permute(1, 2, 0))
window_lines(axes[0])
window_lines(axes[0], SHIFT, "r")
axes[0].set_title("W-MSA windows (white), SW-MSA windows (red)")
axes[1].imshow(rolled.permute(1, 2, 0))
window_lines(axes[1])
axes[1].set_title("torch.roll by (-3, -3) tokens: regular windows")
axes[2].imshow(rolled.permute(1, 2, 0))
region_image = labels.repeat_interleave(P_VIS, 0).repeat_interleave(P_VIS, 1)  # (224, 224)
axes[2].imshow(region_image, cmap="tab10", alpha=0.45, vmin=0, vmax=9)
window_lines(axes[2])
axes[2].set_title(f"shift_region_labels: {len(labels.unique())} regions")
axes[3].imshow(mask[-1], cmap="gray")
axes[3].set(title="mask of the bottom-right window (49 x 49)\nwhite 0 = attend, black -100",
            xlabel="key token", ylabel="query token")
for ax in axes[:3]:
    ax.axis("off")
plt.tight_layout()
plt.show()
print(f"windows whose mask blocks anything: {int((mask < 0).any(-1).any(-1).sum())} of {len(mask)} "
      "(the last row and column of windows); the others attend freely")

# %% [markdown]
# The bottom-right window of the rolled map holds four pieces glued together by the roll: the
# image's bottom-right corner, a strip of its top edge, a strip of its left edge and its top-left
# corner. The mask splits the window's 49 x 49 scores into four blocks of tokens that may see each
# other.

# %% nbgrader={"grade": true, "grade_id": "task_4_4", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 4.4.
### BEGIN HIDDEN TESTS
grade_task("4.4")
### END HIDDEN TESTS

# %% [markdown]
# ## 6. Task 4.5: the Swin block
#
# $$\hat z = z + \text{(S)W-MSA}(\mathrm{LN}(z)), \qquad z' = \hat z + \mathrm{MLP}(\mathrm{LN}(\hat z))$$
#
# Pre-norm, as Week 2's block, on (B, H, W, C) maps. Implement `SwinTransformerBlock(dim,
# input_resolution, num_heads, window_size, shift_size, mlp_ratio, qkv_bias, dropout)`:
# * in `__init__`, timm's small-map rule per axis (a side no larger than the window: the window
#   shrinks to it, no shift along it), stored as `window_size` and `shift_size` pairs;
#   `norm1`, `attn`, `norm2` (LayerNorm with PyTorch's default eps 1e-5, not the ViT's 1e-6),
#   `mlp` (Week 2's `Mlp`), and the mask as a buffer `attn_mask` (`persistent=False`; None when
#   there is no shift);
# * in `forward`: norm, roll by (-S), partition, attend with the mask, reverse, roll back by (+S),
#   residual; then the MLP half.
#
# *At SMOKE scale on the 2-core machine: about 2 s (measured 2026-12-04, under load).*

# %%
for resolution, ws, s in (((8, 8), 4, 0), ((14, 14), 7, 3), ((8, 12), 4, 2), ((4, 8), 4, 2)):
    reference = randomise(timm_swin.SwinTransformerBlock(12, resolution, 3, window_size=ws, shift_size=s,
                                                         mlp_ratio=2.0), seed=2)
    mine = SwinTransformerBlock(12, resolution, 3, window_size=ws, shift_size=s, mlp_ratio=2.0).eval()
    mine.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, *resolution, 12)
    with torch.no_grad():
        compare(f"block {resolution}, ws {ws}, S {s} vs timm (uses window {mine.window_size}, shift "
                f"{mine.shift_size})", mine(x), reference(x), tol=1e-5)

# %% [markdown]
# ### One token's view: global, window, shifted window
#
# Below, attention without any learned weight: every 8 x 8-pixel token of the photo is its mean
# colour (standardised, as a direction), used as query and key in your Week 1
# `ScaledDotProductAttention`, so a token attends most to tokens of similar colour, wherever it is
# allowed to look. Globally it may look
# anywhere; in W-MSA only inside its window; in SW-MSA inside its shifted window, and only at the
# tokens of its own region (the mask). The maps are computed with your `window_partition`,
# `shifted_window_mask` and `window_reverse`, and rolled back onto the photo.

# %%
colours = F.avg_pool2d(photo[None], P_VIS)[0].permute(1, 2, 0)  # (28, 28, 3): one mean colour per token
colours = (colours - colours.mean((0, 1))) / colours.std((0, 1))  # standardised per channel
colours = 3.5 * F.normalize(colours, dim=-1)  # scores = 3.5^2 cos / sqrt(3): at most ~7, a soft preference
core = ScaledDotProductAttention(head_dim=3).eval()


def global_view(row: int, col: int) -> torch.Tensor:
    tokens = colours.reshape(1, 1, GRID * GRID, 3)  # (B=1, nH=1, 784, 3)
    _, weights = core(tokens, tokens, tokens)  # (1, 1, 784, 784)
    return weights[0, 0, row * GRID + col].reshape(GRID, GRID)


def window_view(row: int, col: int, shift: int) -> torch.Tensor:
    """The attention row of token (row, col) under (S)W-MSA, as a (28, 28) map on the original grid."""
    x = torch.roll(colours[None], (-shift, -shift), dims=(1, 2))  # (1, 28, 28, 3)
    win = window_partition(x, WS).reshape(-1, 1, WS * WS, 3)  # (nW, nH=1, N, 3)
    bias = shifted_window_mask((GRID, GRID), WS, shift)[:, None] if shift else None  # (nW, 1, N, N)
    _, weights = core(win, win, win, bias=bias)  # (nW, 1, N, N)
    r, c = (row - shift) % GRID, (col - shift) % GRID  # where the token sits in the rolled map
    w, i = (r // WS) * (GRID // WS) + c // WS, (r % WS) * WS + c % WS  # its window and place in it
    rows = torch.zeros(GRID * GRID // (WS * WS), WS * WS)  # (nW, N): zero outside the token's window
    rows[w] = weights[w, 0, i]
    view = window_reverse(rows.reshape(-1, WS, WS, 1), WS, GRID, GRID)[0, :, :, 0]  # (28, 28), rolled map
    return torch.roll(view, (shift, shift), dims=(0, 1))  # back where the tokens came from


picked = [(12, 12), (26, 26)]
fig, axes = plt.subplots(2, 3, figsize=(13, 8.6))
with torch.no_grad():
    for r, (row, col) in enumerate(picked):
        views = [global_view(row, col), window_view(row, col, 0), window_view(row, col, SHIFT)]
        for ax, view, title in zip(axes[r], views, ("global (ViT)", "W-MSA", "SW-MSA (shift 3)")):
            compare(f"token {row, col}, {title}: weights sum to 1", view.sum(), torch.tensor(1.0), tol=1e-5)
            ax.imshow(photo.permute(1, 2, 0) * 0.35)
            heat = view.repeat_interleave(P_VIS, 0).repeat_interleave(P_VIS, 1)  # (224, 224)
            ax.imshow(heat, cmap="inferno", alpha=(heat / heat.max()).clamp(0, 1).numpy())
            ax.scatter([col * P_VIS + 3.5], [row * P_VIS + 3.5], marker="*", s=160, color="c")
            if title != "global (ViT)":
                window_lines(ax, SHIFT if "SW" in title else 0, "w")
            ax.set_title(f"token {row, col}: {title}")
            ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# The middle token (12, 12) sits near a window corner: W-MSA shows it only the window to its top
# left; the shifted window is centred closer on it and reaches across two borders of the regular
# grid. The bottom-right token (26, 26) lands in a window glued together by the roll: the mask
# keeps it from attending to the top and left edges of the image, which the roll placed next to it.
#
# ### How shifted windows let information cross borders
#
# How far can one output token see after one block, and after two? The gradient of one output
# token with respect to the input map is non-zero exactly where the input could influence it.
# Three stacks of random-init blocks on a 16 x 16 map with 4 x 4 windows:

# %%
torch.manual_seed(0)
blocks = {name: SwinTransformerBlock(16, (16, 16), 2, window_size=4, shift_size=shift).eval()
          for name, shift in (("W", 0), ("W'", 0), ("SW", 2), ("SW'", 2))}


def reach(stack: list[str], row: int = 5, col: int = 6) -> torch.Tensor:
    """Where in the input map output token (row, col) of the stack depends on: (16, 16) bool."""
    x = torch.randn(1, 16, 16, 16, requires_grad=True)
    out = x
    for name in stack:
        out = blocks[name](out)
    out[0, row, col].sum().backward()
    influence = x.grad[0].abs().sum(-1)  # (16, 16)
    return influence > 1e-6 * influence.max()  # masked pairs pass ~1e-44 of a gradient, not 0


stacks = (["W"], ["W", "W'"], ["W", "SW"], ["W", "SW", "W'", "SW'"])
fig, axes = plt.subplots(1, 4, figsize=(16, 4.2))
for ax, stack in zip(axes, stacks):
    seen = reach(stack)
    ax.imshow(seen, cmap="Blues", vmin=0, vmax=1.3)
    ax.scatter([6], [5], marker="*", s=150, color="r")
    for k in range(0, 17, 4):
        ax.axhline(k - 0.5, color="k", lw=0.8)
        ax.axvline(k - 0.5, color="k", lw=0.8)
    ax.set_title(f"{' -> '.join(stack)}: {int(seen.sum())} input tokens")
    ax.set_xticks([])
    ax.set_yticks([])
plt.tight_layout()
plt.show()

# %% [markdown]
# Two regular blocks in a row never leave the window: stacking them does not widen the view at all.
# A shifted block after a regular one reaches into the three neighbouring windows (16 -> 64 input
# tokens), and the next pair widens the view again, so a deep stage mixes information across the
# whole map while every single attention stays local.

# %% nbgrader={"grade": true, "grade_id": "task_4_5", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 4.5.
### BEGIN HIDDEN TESTS
grade_task("4.5")
### END HIDDEN TESTS

# %% [markdown]
# ## 7. Task 4.6: patch merging
#
# Between stages, each 2 x 2 neighbourhood of tokens becomes one token: concatenate the four (4C),
# normalise, project to 2C with `reduction = nn.Linear(4C, 2C, bias=False)`. The resolution halves,
# the width doubles, as in a CNN's strided stage. The concatenation order is a contract (the
# weights depend on it): (0, 0), (1, 0), (0, 1), (1, 1) as (row offset, column offset), i.e.
# `[x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]]`. The reading order
# (0, 0), (0, 1), (1, 0), (1, 1) is the natural thing to write, and wrong for timm's weights.
#
# *At SMOKE scale on the 2-core machine: under a second (measured 2026-12-04, under load).*

# %%
for out_dim in (None, 10):
    reference = randomise(timm_swin.PatchMerging(6, out_dim=out_dim), seed=3)
    mine = PatchMerging(6, out_dim=out_dim).eval()
    mine.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 8, 12, 6)
    with torch.no_grad():
        compare(f"PatchMerging(6, out_dim={out_dim}) vs timm", mine(x), reference(x), tol=1e-5)
print("shape:", tuple(x.shape), "->", tuple(mine(x).shape))

# %% nbgrader={"grade": true, "grade_id": "task_4_6", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 4.6.
### BEGIN HIDDEN TESTS
grade_task("4.6")
### END HIDDEN TESTS

# %% [markdown]
# ## 8. Task 4.7: a hierarchical Swin for 32 x 32 images
#
# `SwinTransformerStage(dim, out_dim, input_resolution, depth, downsample, num_heads, ...)`:
# patch merging first (stages after the first), then `depth` blocks alternating shift 0 and
# ws // 2. `SwinTransformer(img_size, patch_size, in_chans, num_classes, embed_dim, depths,
# num_heads, window_size, ...)`: `patch_embed` (given: Week 2's embedding plus a LayerNorm, as a
# map), `layers` (the stages), `norm` on every token of the last map, `head` (given: the average
# over the map, then `fc`). timm's layout exactly, so timm's state dict loads with `strict=True`.
#
# *At SMOKE scale on the 2-core machine: under a second (measured 2026-12-04, under load).*

# %%
tiny = dict(img_size=32, patch_size=2, embed_dim=24, depths=(2, 2, 2), num_heads=(2, 4, 8), window_size=4,
            num_classes=10, mlp_ratio=2.0)
reference = randomise(timm_swin.SwinTransformer(**tiny), seed=4)
mine = SwinTransformer(**tiny).eval()
mine.load_state_dict(reference.state_dict(), strict=True)
images = torch.randn(4, 3, 32, 32)
with torch.no_grad():
    compare("SwinTransformer logits vs timm (32x32, 3 stages)", mine(images), reference(images), tol=1e-5)
    x = mine.patch_embed(images)
    print(f"patch_embed: {tuple(images.shape)} -> {tuple(x.shape)}")
    for i, stage in enumerate(mine.layers):
        x = stage(x)
        used = [(tuple(b.window_size), tuple(b.shift_size)) for b in stage.blocks]
        print(f"layers.{i}: {tuple(x.shape)}, blocks use (window, shift) {used}")

# %% [markdown]
# The last stage works on a 4 x 4 map with 4 x 4 windows: one window, so neither of its blocks
# shifts (timm's rule, which your block follows).

# %% nbgrader={"grade": true, "grade_id": "task_4_7", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 4.7.
### BEGIN HIDDEN TESTS
grade_task("4.7")
### END HIDDEN TESTS

# %% [markdown]
# ## 9. What it costs: ViT-S/16 against Swin-T
#
# The course's profiler (`vitcourse.profiling`, a utility, not an exercise) measures a model at one
# input size: parameters, FLOPs as `torch.utils.flop_counter.FlopCounterMode` counts them (2 per
# multiply-add of every matrix product; papers quote multiply-adds, so Swin-T's "4.5G" is about
# 9 GFLOPs here), the median latency of a few forward passes (wall clock, and on the CPU the
# process CPU time, which a busy shared machine inflates less), and the peak memory the forward
# pass allocates. Both timm models are randomly initialised: cost does not depend on the weights.
# Timings depend on the machine, its load and torch's thread count; compare rows of one run only.
# One trap the profiler handles for you: on the CPU, timm's ViT calls the fused
# `F.scaled_dot_product_attention`, whose CPU kernel this PyTorch's `FlopCounterMode` has no formula
# for (pytorch/pytorch#195460), so a bare `FlopCounterMode` counts ViT-S's attention products as 0 on
# the CPU (and correctly on a GPU). `vitcourse.profiling` adds the formula; the last line of the cell
# shows the difference.
#
# *At SMOKE scale on the 2-core machine: about 5 s (measured 2026-12-04, under load).*

# %%
REPEATS = SCALE.pick(smoke=2, full=10)
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
vit_s, _ = load_timm("vit_small_patch16_224", pretrained=False)
swin_t, _ = load_timm("swin_tiny_patch4_window7_224", pretrained=False)
rows = [profile_model(vit_s, (1, 3, 224, 224), "ViT-S/16 (timm)", repeats=REPEATS, warmup=0, device="cpu"),
        profile_model(swin_t, (1, 3, 224, 224), "Swin-T (timm)", repeats=REPEATS, warmup=0, device="cpu")]
if DEVICE.type == "cuda":  # FULL on a GPU: throughput and memory at a realistic batch
    gpu_batch = SCALE.pick(smoke=16, full=128)
    for model, name in ((vit_s, "ViT-S/16 (timm)"), (swin_t, "Swin-T (timm)")):
        rows.append(profile_model(model, (gpu_batch, 3, 224, 224), name, repeats=REPEATS, warmup=3, device=DEVICE))
    vit_s.cpu()
    swin_t.cpu()
else:
    print("no GPU here: the GPU rows (throughput and memory at a large batch) run where torch.cuda is available")
print(format_profiles(rows))
with torch.no_grad(), FlopCounterMode(display=False) as bare:
    vit_s(torch.randn(1, 3, 224, 224))
print(f"ViT-S/16 on the CPU: a bare FlopCounterMode counts {bare.get_total_flops() / 1e9:.2f} GFLOPs, the profiler "
      f"{rows[0].flops / 1e9:.2f}: the fused attention's {(rows[0].flops - bare.get_total_flops()) / 1e9:.2f} GFLOPs "
      "are missing from the bare count")

# %%
stage_shapes = []
hooks = [stage.register_forward_hook(lambda m, i, out: stage_shapes.append(tuple(out.shape)))
         for stage in swin_t.layers]
with torch.no_grad():
    swin_t(torch.randn(1, 3, 224, 224))
for hook in hooks:
    hook.remove()
print("Swin-T feature pyramid (B, H, W, C):", " -> ".join(str(s) for s in stage_shapes))
print(f"ViT-S/16: {(224 // 16) ** 2 + 1} tokens of width {vit_s.embed_dim} in every one of its {len(vit_s.blocks)} blocks")

# %% [markdown]
# Read the memory column with care: it compares implementations as much as architectures. timm's
# ViT calls the fused `F.scaled_dot_product_attention`, which never stores the (T x T) score matrix;
# timm's Swin (and yours) computes the window attention explicitly, storing every window's scores
# (timm keeps its fused Swin path behind an experimental flag). Latency, too, follows the
# implementation: Swin's rolls, partitions and permutes are memory traffic that no FLOP count sees
# (the point of the EfficientViT reading).
#
# ### Attention cost against image size
#
# One attention layer (width 96, 3 heads), on the tokens of 4 x 4-pixel patches, counted by
# `FlopCounterMode` on the `meta` device (shapes only, nothing is computed, so even a 1792 x 1792
# image costs nothing to count): Week 2's global `Attention` against your `WindowAttention` with
# 7 x 7 windows. The two attention products (QK^T and weights·V, `bmm`) are counted apart from the
# projections (`addmm`/`mm`), which are the same for both.

# %%
dim, heads = 96, 3
sides = [56, 112, 224, 448, 896, 1792]


@cache  # counted the first time a cell asks; the summary in section 11 asks again
def attention_costs() -> dict[str, list[int]]:
    """FLOPs of one layer per image side in ``sides``: the attention products of global and of
    window attention, and the projections (the same for both)."""
    cost = {"global": [], "window": [], "projections": []}
    global_layer = Attention(dim, heads).to("meta")
    window_layer = WindowAttention(dim, heads, window_size=7).to("meta")
    for side in sides:
        n = (side // 4) ** 2
        g = count_flops(global_layer, torch.empty(1, n, dim, device="meta"), by_operator=True)
        w = count_flops(window_layer, torch.empty(n // 49, 49, dim, device="meta"), by_operator=True)
        cost["global"].append(g["bmm"])
        cost["window"].append(w["bmm"])
        cost["projections"].append(g["addmm"])
    return cost


cost = attention_costs()
tokens = [(s // 4) ** 2 for s in sides]
compare("window bmm FLOPs = 4 N 49 D", torch.tensor([float(c) for c in cost["window"]]),
        torch.tensor([4.0 * n * 49 * dim for n in tokens]), tol=1e-12)
compare("global bmm FLOPs = 4 N^2 D", torch.tensor([float(c) for c in cost["global"]]),
        torch.tensor([4.0 * n * n * dim for n in tokens]), tol=1e-12)

fig, ax = plt.subplots(figsize=(7.5, 4.5))
ax.loglog(tokens, cost["global"], "o-", label="global attention: QK^T + AV (ViT)")
ax.loglog(tokens, cost["window"], "s-", label="window attention 7x7: QK^T + AV (Swin)")
ax.loglog(tokens, cost["projections"], "^--", label="qkv + proj (both)")
ax.set(xlabel="tokens N (image side / 4, squared)", ylabel="FLOPs of one layer",
       title="Quadratic (slope 2) against linear (slope 1)")
for side, n in zip(sides, tokens):
    ax.annotate(f"{side}px", (n, cost["window"][sides.index(side)]), textcoords="offset points", xytext=(0, -14),
                fontsize=7, ha="center")
ax.legend()
plt.show()
crossing = next((s for s, g, p in zip(sides, cost["global"], cost["projections"]) if g > p), None)
print(f"global QK^T + AV (4 N^2 D) outgrow qkv + proj (8 N D^2) once N > 2D = {2 * dim} tokens: from {crossing}px "
      f"on here; at 1792px they cost {cost['global'][-1] / cost['window'][-1]:.0f}x the windowed ones")

# %% [markdown]
# ## 10. Train them with one recipe
#
# Three models trained with the *same* recipe and budget: a ViT (Week 2's `VisionTransformer`);
# a one-stage Swin of the same width, depth and tokens (so the same size: what differs is windowed
# attention with shifts and a relative bias against global attention with absolute positions);
# and the two-stage Swin of the profile above, sized to the ViT's FLOPs (patch merging doubles
# the width, so it has about 3.3 times the parameters). The recipe: AdamW with weight decay 0.05
# on weight matrices only (not on biases, norms, position embeddings, the CLS token or the
# relative bias tables: Week 3's rule), one epoch of linear warmup then cosine decay
# (`torch.optim.lr_scheduler`), label smoothing 0.1, the same epochs, batch size and data order.
# The helper below exists only for this comparison, kept as small as possible; Week 3 builds the
# course's full training loop. SMOKE trains briefly on the offline digits, one seed per model
# (`SEEDS = (0, 1, 2)` repeats it over seeds, as the week's README does); FULL on CIFAR-10 with
# larger models and three seeds.
#
# *At SMOKE scale on the 2-core machine: about 52 s (measured 2026-12-04, under load).*

# %%
data = load_dataset(SCALE.pick(smoke="digits", full="cifar10"))
mean = data.x_train.mean(dim=(0, 2, 3), keepdim=True)
std = data.x_train.std(dim=(0, 2, 3), keepdim=True)
x_train, x_test = (data.x_train - mean) / std, (data.x_test - mean) / std
y_train, y_test = data.y_train, data.y_test

EPOCHS = SCALE.pick(smoke=6, full=100)
BATCH = SCALE.pick(smoke=32, full=128)
LR = SCALE.pick(smoke=2e-3, full=1e-3)
SEEDS = SCALE.pick(smoke=(0,), full=(0, 1, 2))
vit_cfg = SCALE.pick(smoke=dict(embed_dim=48, depth=3, num_heads=3, mlp_ratio=2.0),
                     full=dict(embed_dim=192, depth=6, num_heads=3, mlp_ratio=4.0))
flat_cfg = SCALE.pick(smoke=dict(patch_size=4, embed_dim=48, depths=(3,), num_heads=(3,), mlp_ratio=2.0),
                      full=dict(patch_size=2, embed_dim=192, depths=(6,), num_heads=(3,), mlp_ratio=4.0))
swin_cfg = SCALE.pick(smoke=dict(patch_size=4, embed_dim=48, depths=(2, 2), num_heads=(3, 6), mlp_ratio=2.0),
                      full=dict(patch_size=2, embed_dim=96, depths=(2, 2, 2), num_heads=(3, 6, 12), mlp_ratio=4.0))
builders = {
    "ViT (Week 2)": lambda: VisionTransformer(img_size=32, patch_size=4, num_classes=len(data.classes), **vit_cfg),
    "Swin, 1 stage": lambda: SwinTransformer(img_size=32, window_size=4, num_classes=len(data.classes), **flat_cfg),
    "Swin (Week 4)": lambda: SwinTransformer(img_size=32, window_size=4, num_classes=len(data.classes), **swin_cfg),
}
NO_DECAY = ("pos_embed", "cls_token", "relative_position_bias_table")


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weight matrices only (Week 3's rule, written out so this week needs no Week 3 code)."""
    decay, rest = [], []
    for name, param in model.named_parameters():
        skip = param.ndim <= 1 or name.endswith(".bias") or name.rsplit(".", 1)[-1] in NO_DECAY
        (rest if skip else decay).append(param)
    return [{"params": rest, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


def train_and_evaluate(model: nn.Module, seed: int = 0) -> dict:
    """The comparison's recipe (not the course's training loop, see Week 3): AdamW, warmup + cosine,
    label smoothing, EPOCHS epochs of BATCH images in a seeded order; returns accuracy and time."""
    torch.manual_seed(seed)
    model = model.to(DEVICE)
    steps_per_epoch = math.ceil(len(y_train) / BATCH)
    total, warmup = EPOCHS * steps_per_epoch, steps_per_epoch
    optimizer = torch.optim.AdamW(decay_groups(model, 0.05), lr=LR)
    schedule = torch.optim.lr_scheduler.SequentialLR(optimizer, [
        torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.01, total_iters=warmup),
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total - warmup)], milestones=[warmup])
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    losses, start, cpu_start = [], time.perf_counter(), time.process_time()
    model.train()
    for _ in tqdm(range(EPOCHS), desc=type(model).__name__, mininterval=2):
        order = torch.randperm(len(y_train))
        for i in range(0, len(order), BATCH):
            index = order[i:i + BATCH]
            loss = loss_fn(model(x_train[index].to(DEVICE)), y_train[index].to(DEVICE))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(x_test[i:i + 500].to(DEVICE)).argmax(1).cpu() == y_test[i:i + 500]).sum())
                      for i in range(0, len(y_test), 500))
    return dict(model=model.cpu(), accuracy=correct / len(y_test), seconds=seconds, cpu_seconds=cpu_seconds,
                losses=losses)


def trained(name: str, seed: int = 0) -> dict:
    """The run of one model of ``builders`` with one seed (the weights and the data order), trained the
    first time a cell asks for it. The cells below ask again instead of reusing a variable, so an
    unfinished task stops each of them with its own message, never with a NameError."""
    return _trained(name, seed)


@cache
def _trained(name: str, seed: int) -> dict:
    torch.manual_seed(seed)
    model = builders[name]()
    flops = count_flops(model.eval(), torch.randn(1, 3, 32, 32))
    return dict(train_and_evaluate(model, seed), params=count_params(model), flops=flops)


results = {name: [trained(name, seed) for seed in SEEDS] for name in builders}

print(f"{EPOCHS} epochs of {len(y_train)} {data.source} images, batch {BATCH}, on {DEVICE}, seeds {SEEDS}\n")
print(f"{'model':<14} {'params':>9} {'MFLOPs/img':>11} {'train s (wall)':>15} {'train s (CPU)':>14}  test acc per seed")
for name, runs in results.items():
    r = runs[0]
    print(f"{name:<14} {r['params']:>9,} {r['flops'] / 1e6:>11.1f} {r['seconds']:>15.1f} {r['cpu_seconds']:>14.1f}  "
          + ", ".join(f"{run['accuracy']:.1%}" for run in runs))

fig, ax = plt.subplots(figsize=(7, 3.5))
for name, runs in results.items():
    r = runs[0]
    ax.plot(np.convolve(r["losses"], np.ones(10) / 10, mode="valid"), label=f"{name}: test {r['accuracy']:.0%}")
ax.set(xlabel="step", ylabel="training loss (10-step mean)", title=f"Same recipe, same budget ({data.source})")
ax.legend()
plt.show()

# %%
small_rows = [profile_model(trained(name)["model"], (1, 3, 32, 32), name, repeats=SCALE.pick(smoke=3, full=20),
                            device="cpu") for name in builders]
print(format_profiles(rows + small_rows))

# %% [markdown]
# ## 11. When to use which
#
# The table is printed from this notebook's own measurements (profiling on this machine's CPU; the
# accuracies from the short runs above, on the data they name, with the seeds they name). It is a summary of
# what you measured plus what the papers report, not a benchmark: rerun at FULL scale before you
# quote a number.
#
# *At SMOKE scale on the 2-core machine: under a second (measured 2026-12-04, under load).*

# %%
# asked again, not reused: an unfinished task stops this cell with its own message
vit_r, flat_r, swin_r = trained("ViT (Week 2)"), trained("Swin, 1 stage"), trained("Swin (Week 4)")
cost = attention_costs()
vit_row, swin_row = rows[0], rows[1]
print(f"""| situation | prefer | from this notebook |
|---|---|---|
| image classification at 224 px, compute matched | either: costs are close | ViT-S/16 {vit_row.gflops_per_image:.1f} vs Swin-T {swin_row.gflops_per_image:.1f} GFLOPs, {vit_row.params / 1e6:.1f}M vs {swin_row.params / 1e6:.1f}M params, {vit_row.cpu_s * 1e3:.0f} vs {swin_row.cpu_s * 1e3:.0f} ms of CPU per image here ({vit_row.threads} thread(s)) |
| high resolution, dense prediction (detection, segmentation) | Swin | attention cost linear in tokens (section 9: {cost['global'][-1] / cost['window'][-1]:.0f}x fewer attention FLOPs at 1792 px) and a feature pyramid {stage_shapes[0][1]}x{stage_shapes[0][2]} to {stage_shapes[-1][1]}x{stage_shapes[-1][2]} |
| small dataset, short training from scratch | try Swin first (locality prior); measure | {data.source}, {EPOCHS} epochs, seed 0: ViT {vit_r['accuracy']:.0%}, same-size 1-stage Swin {flat_r['accuracy']:.0%} ({flat_r['params'] / 1e3:.0f}k vs {vit_r['params'] / 1e3:.0f}k params), 2-stage Swin {swin_r['accuracy']:.0%} ({swin_r['params'] / 1e3:.0f}k params, {swin_r['flops'] / 1e6:.0f}M vs {vit_r['flops'] / 1e6:.0f}M FLOPs); one small, easy data set |
| peak memory of the forward pass at 224 px, batch 1 | measured, not assumed | ViT-S/16 {vit_row.peak_memory_bytes / 2**20:.0f} MiB vs Swin-T {swin_row.peak_memory_bytes / 2**20:.0f} MiB |
| large-scale pre-training, global context from layer 1, simple code (MAE, CLIP, DINO) | ViT | one token grid, plain global attention: Weeks 5 and 6 build on it |""")
print(f"\nnotebook ran in {time.monotonic() - NOTEBOOK_START:.0f} s at {SCALE.value.upper()} scale")

# %% [markdown]
# ## 12. Reflect
#
# Not graded; next week assumes you can answer them.
#
# 1. Count the FLOPs of one W-MSA layer by hand for an H x W map, width C, window M: the
#    projections and the two attention products. Compare with global attention (the paper's
#    equations 1 and 2). At what number of tokens does global attention cost as much as the
#    projections?
# 2. Why does the cyclic shift need a mask? Can any row of this mask be fully masked? Then why
#    -100 rather than -inf, and for which scores would -100 stop being enough?
# 3. Your block turns the shift off when a map is no larger than its window. What would a shift do
#    there, and why would it be wasted work?
# 4. Window size is a trade-off: what do you gain and lose with 4 x 4 windows instead of 7 x 7,
#    or 14 x 14? How does the window size change the cost and the receptive field per block?
# 5. Relative position bias vs absolute position embeddings: which one lets you run the same
#    weights on a larger image, and what has to change in each case?
