# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Week 2 · Patches to predictions: patch embedding and a complete ViT
#
# Last week's attention works on a *sequence* of tokens. An image is a grid of pixels. This week
# you build the bridge, following Dosovitskiy et al., *An Image is Worth 16x16 Words* (ICLR 2021):
# cut the image into P x P patches, flatten each one, map it linearly to a D-dimensional token,
# prepend a learnable CLS token, add position embeddings, run pre-norm transformer blocks (your
# Week 1 attention inside) and classify from the CLS token.
#
# You write the code in three modules of `src/vitcourse/` (in an nbgrader assignment folder:
# `vitcourse/` next to this notebook): `patches.py` (Tasks 2.1, 2.2), `positions.py` (Task 2.3) and
# `vit.py` (Tasks 2.4, 2.5). Your model's parameter names are timm's, so timm's
# `VisionTransformer` is the reference you are checked against, weight for weight.
#
# Each check prints a relative error next to the tolerance it expects. Those checks and the
# public tests (`vitgrade check 2`) are for feedback only; the hidden tests decide the grade.
#
# **Which Week 1 attention runs here.** Your `Attention` (Task 2.4) uses Week 1's
# `ScaledDotProductAttention`, and which one that is depends on where you work:
# * in a clone of the course repository, `vitcourse/attention.py` is **your own** Week 1 code, so
#   a Week 1 bug shows up in this notebook too (`vitgrade check 2` then tells you that your Week 1
#   public tests fail as well);
# * in an nbgrader assignment folder, `vitcourse/attention.py` is the **reference** Week 1
#   solution, shipped with the assignment;
# * the hidden tests always grade this week with the reference Week 1 code, so an old bug never
#   costs points twice.
#
# The cell below prints which file you imported and checks it once against PyTorch.
#
# *At SMOKE scale on the 2-core machine, imports and data take about 10 s; every section
# states its own time (all measured 2026-12-04, under load).*

# %%
# %load_ext autoreload
# %autoreload 2
import time

import matplotlib.pyplot as plt
import numpy as np
import skimage.data
import timm
import torch
import torch.nn.functional as F
from sklearn.manifold import TSNE
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from vitcourse.checks import compare, randomise
from vitcourse.data import load_cifar10
from vitcourse.patches import PatchEmbedding, conv_weight_to_linear, patch_grid, patchify, unpatchify
from vitcourse.positions import resize_pos_embed, sincos_1d, sincos_2d
from vitcourse.scale import SCALE, scale_banner
from vitcourse.vit import VisionTransformer, num_patches, vit_flops, vit_num_params

print(scale_banner())
torch.manual_seed(0)
NOTEBOOK_START = time.monotonic()

# %%
import vitcourse.attention as week1  # noqa: E402

print(f"Week 1 attention imported from {week1.__file__}")
q = torch.randn(1, 2, 5, 8)
try:
    compare("Week 1 ScaledDotProductAttention vs F.scaled_dot_product_attention",
            week1.ScaledDotProductAttention(8).eval()(q, q, q)[0], F.scaled_dot_product_attention(q, q, q), tol=1e-5)
except NotImplementedError as unfinished:  # the model of Task 2.4 needs it: say so now, not there
    print(f"[XX  ] your Week 1 attention is not finished ({unfinished}); Task 2.4 needs it: "
          "finish Week 1, or work in the nbgrader assignment folder, which ships the reference")

# %% [markdown]
# ## 1. An image is worth 16 x 16 words
#
# An H x W image cut into P x P patches gives $N = (H/P)(W/P)$ patches; with the CLS token the
# transformer sees $T = N + 1$ tokens. A 32 x 32 CIFAR-10 image (section 7) gives $(32/P)^2$:
# 64 patches for P = 4, 16 for P = 8, 4 for P = 16. Patches that small are hard to see, so here
# is a real photograph (scikit-image's `chelsea`, cropped to a square and resized to 128 x 128),
# which gives $(128/P)^2$ patches, cut three ways.
#
# *At SMOKE scale on the 2-core machine: under a second (measured 2026-12-04, under load).*

# %%
photo = torch.from_numpy(skimage.data.chelsea().copy()).permute(2, 0, 1).float() / 255  # (3, 300, 451)
side = min(photo.shape[1:])
top, left = (photo.shape[1] - side) // 2, (photo.shape[2] - side) // 2
photo = photo[:, top:top + side, left:left + side]  # the centre square
photo = F.interpolate(photo[None], size=(128, 128), mode="bilinear", antialias=True, align_corners=False)[0]

fig, axes = plt.subplots(1, 4, figsize=(15, 4))
axes[0].imshow(photo.permute(1, 2, 0))
axes[0].set_title("128 x 128 photograph")
for ax, p in zip(axes[1:], (16, 8, 4)):
    ax.imshow(patch_grid(photo, p, gap=1).permute(1, 2, 0))
    ax.set_title(f"P = {p}: {(128 // p) ** 2} patches\nof {p}x{p}x3 = {p * p * 3} numbers each")
for ax in axes:
    ax.axis("off")
plt.tight_layout()
plt.show()

print(f"{'P':>3} {'grid':>7} {'tokens T':>9} {'T^2 attention scores / head':>28}")
for p in (16, 8, 4):
    t = (128 // p) ** 2 + 1
    print(f"{p:>3} {128 // p:>3}x{128 // p:<3} {t:>9} {t * t:>28,}")

# %% [markdown]
# Halving P quadruples the number of tokens, and attention compares every token with every other:
# the score matrix grows 16-fold. Section 6 makes this exact.

# %% [markdown]
# ## 2. Task 2.1: `patchify` and `unpatchify`
#
# Implement in `patches.py`:
# * `patchify(images, patch_size)`: (B, C, H, W) → (B, N, P·P·C). Patches in **raster order**
#   (left to right, then top to bottom); inside a patch the order is **(p1, p2, c)**: row, column,
#   channel, so the three colours of one pixel sit side by side
#   (einops: `'b c (h p1) (w p2) -> b (h w) (p1 p2 c)'`). Raise a `ValueError` that names the sizes
#   when H or W is not divisible by P.
# * `unpatchify(patches, patch_size, image_size)`: the inverse.
#
# No loops: one `reshape`, one `permute`, one `reshape` (write the shape after each as a comment).
#
# The check below builds the same patches a different way: `F.unfold` (the im2col behind
# convolutions) extracts the patches in raster order but flattens them channel-first (c, p1, p2);
# re-ordered, it must agree with your function exactly.
#
# *At SMOKE scale on the 2-core machine: under a second (measured 2026-12-04, under load).*

# %%
def unfold_patches(images: torch.Tensor, p: int) -> torch.Tensor:
    """Reference: F.unfold gives (B, C*P*P, N) in (c, p1, p2) order; reorder to (B, N, P*P*C)."""
    b, c = images.shape[:2]
    cols = F.unfold(images, kernel_size=p, stride=p)  # (B, C*P*P, N)
    return cols.reshape(b, c, p, p, -1).permute(0, 4, 2, 3, 1).reshape(b, -1, p * p * c)


x = torch.randn(2, 3, 32, 48)  # not square, so a swapped axis shows
for p in (4, 8, 16):
    compare(f"patchify P={p} vs F.unfold", patchify(x, p), unfold_patches(x, p), tol=1e-12)
compare("unpatchify(patchify(x))", unpatchify(patchify(x, 8), 8, (32, 48)), x, tol=1e-12)
try:
    patchify(torch.randn(1, 3, 30, 32), 4)
    print("XX  patchify accepted a 30 x 32 image with P=4: it must raise ValueError")
except ValueError as err:
    print(f"ok  a clear error for 30 x 32 with P = 4: {err}")

# %% [markdown]
# The cat's patches, as the model receives them: a sequence, one row of 8·8·3 = 192 numbers per
# token. Unpatchify puts them back.

# %%
tokens = patchify(photo[None], 8)[0]  # (256, 192)
fig, axes = plt.subplots(1, 3, figsize=(14, 3.5), gridspec_kw={"width_ratios": [3, 1, 1]})
axes[0].imshow(tokens[:64].T, aspect="auto", cmap="gray")
axes[0].set(title="the first 64 tokens (columns), 192 numbers each", xlabel="token (raster order)",
            ylabel="(p1, p2, c) index")
axes[1].imshow(tokens[20].reshape(8, 8, 3))
axes[1].set_title("token 20 reshaped to 8x8x3")
axes[2].imshow(unpatchify(tokens[None], 8, (128, 128))[0].permute(1, 2, 0))
axes[2].set_title("unpatchify(patchify(photo))")
for ax in axes[1:]:
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% nbgrader={"grade": true, "grade_id": "task_2_1", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 2.1: the hidden tests run here when your work is graded.
### BEGIN HIDDEN TESTS
from vitgrade.autograde.nbcell import grade_task  # noqa: E402

grade_task("2.1")
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Task 2.2: `PatchEmbedding`, a linear layer that is a convolution
#
# The embedding is one matrix $E \in \mathbb{R}^{(P^2 C) \times D}$ shared by all patches:
# token $n$ = $x_n E + b$. A `Conv2d(C, D, kernel_size=P, stride=P)` computes exactly the same
# thing: its kernel visits the patches in raster order without overlap, and each output is a dot
# product of one filter (D of them, each C x P x P) with one patch. timm stores the embedding as
# that convolution, `patch_embed.proj`, with weight (D, C, P, P). So will you, to load timm's
# weights; but your `forward` computes it as `patchify` + `F.linear`, with the kernel re-ordered by
# `conv_weight_to_linear` to (D, P·P·C) to match patchify's (p1, p2, c) order.
#
# Implement `conv_weight_to_linear`, `PatchEmbedding.__init__` (an `nn.Conv2d` named `proj`) and
# `PatchEmbedding.forward`.
#
# *At SMOKE scale on the 2-core machine: under a second (measured 2026-12-04, under load).*

# %%
embed = PatchEmbedding(patch_size=8, in_chans=3, embed_dim=32)
x = torch.randn(4, 3, 32, 32)
conv_tokens = embed.proj(x).flatten(2).transpose(1, 2)  # the convolution: (B, D, 4, 4) -> (B, 16, D)
compare("PatchEmbedding vs Conv2d(kernel = stride = 8)", embed(x), conv_tokens, tol=1e-6)
w = embed.proj.weight  # (32, 3, 8, 8)
compare("conv_weight_to_linear row 5, entry (p1=2, p2=7, c=1)",
        conv_weight_to_linear(w)[5, (2 * 8 + 7) * 3 + 1], w[5, 1, 2, 7], tol=1e-12)
print("tokens:", tuple(embed(x).shape), "= (B, N, D)")

# %% nbgrader={"grade": true, "grade_id": "task_2_2", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 2.2.
### BEGIN HIDDEN TESTS
grade_task("2.2")
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Task 2.3: where is each patch? Position embeddings
#
# Attention is permutation-equivariant (Week 1): shuffle the patches and the tokens come out
# shuffled the same way, so the CLS token, which reads all of them, cannot tell a cat from a
# scrambled cat. A table `pos_embed` (one D-vector per token, CLS included) is added to the tokens.
# The paper *learns* it. The fixed alternatives, written in `positions.py`:
#
# * `sincos_1d(L, D)`: Vaswani et al.'s table, $PE[p, 2i] = \sin(p\,\omega_i)$,
#   $PE[p, 2i+1] = \cos(p\,\omega_i)$, $\omega_i = 10000^{-2i/D}$ (sin and cos interleaved);
# * `sincos_2d(h, w, D)`: half the width for the row, half for the column:
#   token $r w + c$ gets `concat(sincos_1d(h, D/2)[r], sincos_1d(w, D/2)[c])`;
# * `resize_pos_embed(pos_embed, new_grid, old_grid)`: a learned table belongs to one grid size.
#   To run the model on larger images, treat the grid rows as a (D-channel) image, resize it
#   bilinearly (`align_corners=False`), and keep the CLS row apart: it has no place on the grid.
#
# *At SMOKE scale on the 2-core machine: under a second (measured 2026-12-04, under load).*

# %%
def similarity_maps(ax, pos: torch.Tensor, grid: int, title: str) -> None:
    """Cosine similarity of every position with every other, one small map per position.

    A position's similarity with itself (always 1) is left blank so it does not set the colour scale."""
    pos = F.normalize(pos.detach(), dim=-1)
    sim = (pos @ pos.T).fill_diagonal_(float("nan"))  # (N, N)
    sim = sim.reshape(grid, grid, grid, grid)  # (row, col) of one position, then (row, col) of the other
    mosaic = sim.permute(0, 2, 1, 3).reshape(grid * grid, grid * grid)
    ax.imshow(mosaic, cmap="viridis")
    ax.set_xticks(np.arange(grid) * grid - 0.5, [])
    ax.set_yticks(np.arange(grid) * grid - 0.5, [])
    ax.grid(color="w", lw=0.8)
    ax.set_title(title)


table = sincos_1d(50, 64)
expected = torch.tensor([[np.sin(p * 10000 ** (-2 * (j // 2) / 64)) if j % 2 == 0
                          else np.cos(p * 10000 ** (-2 * (j // 2) / 64)) for j in range(64)]
                         for p in range(50)], dtype=torch.float32)
compare("sincos_1d(50, 64) vs the formula", table, expected, tol=1e-6)
t2 = sincos_2d(8, 8, 64)
compare("sincos_2d: token (r=2, c=5) = [row 2 | column 5]", t2[2 * 8 + 5],
        torch.cat([sincos_1d(8, 32)[2], sincos_1d(8, 32)[5]]), tol=1e-6)

fig, axes = plt.subplots(1, 3, figsize=(15, 4))
axes[0].imshow(table.T, aspect="auto", cmap="RdBu")
axes[0].set(title="sincos_1d(50, 64)", xlabel="position", ylabel="dimension")
similarity_maps(axes[1], t2, 8, "sincos_2d(8, 8, 64): similarity maps")
similarity_maps(axes[2], torch.randn(64, 64), 8, "random table: no structure")
plt.tight_layout()
plt.show()

# %% [markdown]
# Each small square in the middle plot belongs to one patch position and shows how similar its
# embedding is to every other position: bright near itself, fading with distance, in both
# directions. A learned table has to discover this structure from data (section 7).
#
# Resizing, checked against timm's own helper (`timm.layers.resample_abs_pos_embed`, here with
# bilinear interpolation and no antialiasing):

# %%
learned = torch.randn(1, 1 + 8 * 8, 16)
for new in [(12, 12), (4, 4), (6, 10)]:
    ref = timm.layers.resample_abs_pos_embed(learned, list(new), [8, 8], num_prefix_tokens=1,
                                             interpolation="bilinear", antialias=False)
    compare(f"resize_pos_embed 8x8 -> {new[0]}x{new[1]} vs timm", resize_pos_embed(learned, new, (8, 8)), ref,
            tol=1e-6)
compare("the CLS row is kept", resize_pos_embed(learned, (12, 12))[:, 0], learned[:, 0], tol=1e-12)

smooth = sincos_2d(8, 8, 64)[None]  # (1, 64, 64): a smooth table, no CLS row (num_prefix_tokens=0)
bigger = resize_pos_embed(smooth, (16, 16), (8, 8), num_prefix_tokens=0)[0]
fig, axes = plt.subplots(1, 2, figsize=(7, 3.5))
axes[0].imshow(smooth[0, :, 3].reshape(8, 8), cmap="RdBu")
axes[0].set_title("dimension 3 on the 8x8 grid")
axes[1].imshow(bigger[:, 3].reshape(16, 16), cmap="RdBu")
axes[1].set_title("resized to 16x16 (bilinear)")
plt.show()

# %% nbgrader={"grade": true, "grade_id": "task_2_3", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 2.3.
### BEGIN HIDDEN TESTS
grade_task("2.3")
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Task 2.4: the whole Vision Transformer
#
# $$z_0 = [x_\text{cls};\, x_1 E;\, \dots;\, x_N E] + E_\text{pos}, \qquad
# z'_\ell = z_{\ell-1} + \mathrm{MSA}(\mathrm{LN}(z_{\ell-1})), \qquad
# z_\ell = z'_\ell + \mathrm{MLP}(\mathrm{LN}(z'_\ell)), \qquad
# y = \mathrm{head}(\mathrm{LN}(z_L)_0)$$
#
# Implement in `vit.py`, with timm's names (they are the contract: the hidden tests load timm's
# weights into your model with `strict=True`):
# * `Attention`: one `qkv = nn.Linear(D, 3D)` whose output splits as (3, heads, Dh), Week 1's
#   `ScaledDotProductAttention` as `core`, and `proj`;
# * `Mlp`: `fc1` → exact GELU (`nn.GELU()`, not the tanh approximation) → `fc2`;
# * `Block`: **pre-norm**, `x + attn(norm1(x))` then `x + mlp(norm2(x))`, LayerNorm eps = 1e-6;
# * `VisionTransformer`: `patch_embed`, `cls_token` (1, 1, D), `pos_embed` (1, N+1, D) (or the
#   fixed tables, or none), `blocks`, `norm`, `head` on the CLS token. Prepend CLS **before**
#   adding the positions (row 0 of the table is the CLS token's). At another image size, resize
#   the table with your `resize_pos_embed`.
#
# *At SMOKE scale on the 2-core machine: under a second (measured 2026-12-04, under load).*

# %%
small = dict(embed_dim=48, depth=2, num_heads=3, mlp_ratio=2.0, num_classes=10)
cifar_batch = torch.randn(8, 3, 32, 32)
for p in (4, 8, 16):
    vit = VisionTransformer(img_size=32, patch_size=p, **small)
    print(f"P={p:>2}: logits {tuple(vit(cifar_batch).shape)}, pos_embed {tuple(vit.pos_embed.shape)}")

for p in (4, 8, 16):
    reference = randomise(timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=p, qkv_bias=True, class_token=True, global_pool="token", **small))
    mine = VisionTransformer(img_size=32, patch_size=p, **small).eval()
    mine.load_state_dict(reference.state_dict(), strict=True)  # fails loudly on a wrong name or shape
    with torch.no_grad():
        compare(f"logits vs timm's VisionTransformer, P={p}", mine(cifar_batch), reference(cifar_batch), tol=1e-5)

with torch.no_grad():  # the last model of the loop: P = 16, built for 32 x 32
    print("the same P = 16 model on 48 x 48 images:", tuple(mine(torch.randn(2, 3, 48, 48)).shape),
          f"(the 2x2 position grid resized to {48 // 16}x{48 // 16})")

# %% nbgrader={"grade": true, "grade_id": "task_2_4", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 2.4.
### BEGIN HIDDEN TESTS
grade_task("2.4")
### END HIDDEN TESTS

# %% [markdown]
# ## 6. Task 2.5: what a patch size costs
#
# Implement `num_patches`, `vit_num_params` and `vit_flops` in `vit.py`: formulas, not
# measurements. `vit_flops` counts what `torch.utils.flop_counter.FlopCounterMode` counts, every
# matrix product at 2 FLOPs per multiply-add (LayerNorm, softmax, GELU and biases are not
# counted). Per image with $T = N + 1$ tokens, width D, MLP width M:
#
# | where | FLOPs |
# |---|---|
# | patch embedding | $2\,N\,(P^2 C)\,D$ |
# | per block: qkv, proj, fc1, fc2 | $2TD\cdot 3D + 2TD^2 + 2\cdot 2TDM$ |
# | per block: $QK^\top$ and weights·V | $2\cdot 2T^2D$ (all heads together) |
# | head (CLS only) | $2DK$ |
#
# The check compares your formulas with the model you built: parameters counted, FLOPs measured.
#
# *At SMOKE scale on the 2-core machine: under a second (measured 2026-12-04, under load).*

# %%
cost_cfg = dict(embed_dim=192, depth=6, num_heads=3, mlp_ratio=4.0, num_classes=10)  # a ViT-Tiny-ish CIFAR model


def measure(cfg: dict) -> tuple[int, int]:
    model = VisionTransformer(**cfg).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 3, *model.img_size))
    return counter.get_total_flops(), sum(p.numel() for p in model.parameters() if p.requires_grad)


rows = []
for p in (4, 8, 16):
    cfg = dict(img_size=32, patch_size=p, **cost_cfg)
    flops, params = measure(cfg)
    compare(f"P={p}: vit_flops vs FlopCounterMode", torch.tensor(float(vit_flops(**cfg))), torch.tensor(float(flops)),
            tol=1e-12)
    compare(f"P={p}: vit_num_params vs the model", torch.tensor(float(vit_num_params(**cfg))),
            torch.tensor(float(params)), tol=1e-12)
    n, d, t = num_patches(32, p), cost_cfg["embed_dim"], num_patches(32, p) + 1
    attention = cost_cfg["depth"] * 2 * 2 * t * t * d  # Q K^T and weights @ V
    rows.append((p, n, t, params, flops, attention))

print("\nViT on 32x32 input, D=192, depth 6, 3 heads, MLP 4x (FLOPs per image, forward pass)")
print(f"{'P':>3} {'patches N':>10} {'tokens T':>9} {'params':>10} {'FLOPs':>14} {'attention QK^T+AV':>18} {'share':>6}")
for p, n, t, params, flops, attention in rows:
    print(f"{p:>3} {n:>10} {t:>9} {params:>10,} {flops:>14,} {attention:>18,} {attention / flops:>6.1%}")
vit_b = dict(img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0, num_classes=1000)
print(f"\nsanity check, ViT-B/16 at 224x224: {vit_num_params(**vit_b) / 1e6:.1f} M parameters, "
      f"{vit_flops(**vit_b) / 1e9:.1f} GFLOPs = {vit_flops(**vit_b) / 2e9:.1f} G multiply-adds "
      "(usually quoted as 86 M parameters and '17.6 GFLOPs', which counts multiply-adds)")

# %%
patch_sizes = [2, 4, 8, 16]
flops = [vit_flops(img_size=32, patch_size=p, **cost_cfg) for p in patch_sizes]
attn = [cost_cfg["depth"] * 4 * (num_patches(32, p) + 1) ** 2 * 192 for p in patch_sizes]
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
axes[0].loglog(patch_sizes, flops, "o-", label="all matrix products")
axes[0].loglog(patch_sizes, attn, "s-", label="attention: QK^T and AV")
axes[0].loglog(patch_sizes, [flops[-1] * (16 / p) ** 2 for p in patch_sizes], "k:", label="slope 1/P^2")
axes[0].loglog(patch_sizes, [attn[-1] * (16 / p) ** 4 for p in patch_sizes], "k--", label="slope 1/P^4")
axes[0].set(xlabel="patch size P", ylabel="FLOPs per 32x32 image", title="Cost against patch size")
axes[0].set_xticks(patch_sizes, [str(p) for p in patch_sizes])
axes[0].legend()
axes[1].bar([str(p) for p in patch_sizes], [a / f for a, f in zip(attn, flops)])
axes[1].set(xlabel="patch size P", ylabel="share of the FLOPs", title="Attention's share of the compute")
plt.tight_layout()
plt.show()

# %% [markdown]
# **Why quadratic.** $N = HW/P^2$ tokens. Everything a token does on its own inside the blocks
# (qkv, proj, MLP) costs $\propto N D^2$, so it grows like $1/P^2$: halve P, four times the cost.
# The patch embedding is the exception: $2N(P^2C)D = 2HWCD$, the same for every P (each pixel
# value meets each of the D filters once, whatever the patches are). Attention
# compares every pair of tokens: $QK^\top$ and weights·V cost $\propto N^2 D \propto 1/P^4$, so
# halving P multiplies it by 16. The ratio of the two is $4T^2D / 24TD^2 = T / 6D$: on a 32 x 32
# image with D = 192 attention is a small share (the table above), but the share grows with every
# halving of P, and at high resolution (thousands of tokens) attention dominates. This is the wall
# Swin (Week 4) climbs over with local windows.

# %% nbgrader={"grade": true, "grade_id": "task_2_5", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 2.5.
### BEGIN HIDDEN TESTS
grade_task("2.5")
### END HIDDEN TESTS

# %% [markdown]
# ## 7. A short training run: positions learn the grid
#
# Two identical small ViTs (P = 4, so an 8 x 8 grid), one with learned positions and one without,
# trained briefly on CIFAR-10, or, offline, on the stand-in the loader prints. Real CIFAR-10
# training to the curriculum's > 75 % is Week 3; here we want to see two things: what the learned
# position table looks like, and what the model loses without one.
#
# *At SMOKE scale on the 2-core machine: about 44 s (measured 2026-12-04, under load).*

# %%
data = load_cifar10(n_test=SCALE.pick(smoke=1000, full=None))
mean = data.x_train.mean(dim=(0, 2, 3), keepdim=True)
std = data.x_train.std(dim=(0, 2, 3), keepdim=True)
x_train, x_test = (data.x_train - mean) / std, (data.x_test - mean) / std
y_train, y_test = data.y_train, data.y_test

fig, axes = plt.subplots(1, 8, figsize=(12, 1.8))
for ax, i in zip(axes, range(8)):
    ax.imshow(data.x_train[i].permute(1, 2, 0))
    ax.set_title(data.classes[int(y_train[i])], fontsize=8)
    ax.axis("off")
plt.show()

# %%
STEPS = SCALE.pick(smoke=300, full=5000)
BATCH = SCALE.pick(smoke=64, full=128)
LR = SCALE.pick(smoke=3e-3, full=1e-3)
train_cfg = dict(img_size=32, patch_size=4, embed_dim=SCALE.pick(smoke=64, full=192),
                 depth=SCALE.pick(smoke=2, full=6), num_heads=SCALE.pick(smoke=4, full=3), mlp_ratio=2.0,
                 num_classes=10)


DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(x[i:i + batch].to(DEVICE)).argmax(1).cpu() == y[i:i + batch]).sum())
                      for i in range(0, len(y), batch))
    return correct / len(y)


def train(pos_embed: str, seed: int = 0) -> tuple[VisionTransformer, list[float], float]:
    """Train one ViT on DEVICE; return it (moved back to the CPU), its losses and its test accuracy."""
    torch.manual_seed(seed)
    model = VisionTransformer(pos_embed=pos_embed, **train_cfg).to(DEVICE)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=LR, total_steps=STEPS, pct_start=0.1)
    losses = []
    model.train()
    for _ in tqdm(range(STEPS), desc=f"positions: {pos_embed}", mininterval=2):
        index = torch.randint(0, len(y_train), (BATCH,))
        loss = F.cross_entropy(model(x_train[index].to(DEVICE)), y_train[index].to(DEVICE))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    test_accuracy = evaluate(model, x_test, y_test)
    return model.cpu().eval(), losses, test_accuracy


RUNS = {}  # pos_embed -> (model, losses, test accuracy)


def trained(pos_embed: str) -> tuple[VisionTransformer, list[float], float]:
    """The trained run of one variant, trained the first time it is asked for. The cells below
    ask again instead of reusing a variable, so an unfinished task stops each of them with its
    own message, never with a NameError or a model left over from an earlier section."""
    if pos_embed not in RUNS:
        RUNS[pos_embed] = train(pos_embed)
    return RUNS[pos_embed]


print(f"training on {DEVICE}")
runs = {kind: trained(kind) for kind in ("learn", "none")}
accuracy = {kind: acc for kind, (_, _, acc) in runs.items()}
for kind, acc in accuracy.items():
    print(f"positions {kind:>5}: test accuracy {acc:.1%} on {len(y_test)} {data.source} test images "
          f"after {STEPS} steps")

fig, ax = plt.subplots(figsize=(7, 3.5))
for kind, (_, losses, _) in runs.items():
    ax.plot(np.convolve(losses, np.ones(20) / 20, mode="valid"), label=f"{kind} (test {accuracy[kind]:.0%})")
ax.set(xlabel="step", ylabel="training loss (20-step mean)", title=f"{data.source}: with and without positions")
ax.legend()
plt.show()

# %% [markdown]
# ### The learned table
# Each small square: one patch position's cosine similarity to all 64 positions. Compare with the
# sin/cos maps of section 4.

# %%
model = trained("learn")[0]
grid = model.grid_size[0]
pos = model.pos_embed[0, 1:].detach()  # (64, D): the CLS row left out
fig, axes = plt.subplots(1, 2, figsize=(12, 5))
similarity_maps(axes[0], pos, grid, f"learned positions after {STEPS} steps")
unit = F.normalize(pos, dim=-1)
sim = unit @ unit.T
rows_, cols_ = torch.arange(grid * grid) // grid, torch.arange(grid * grid) % grid
dist = ((rows_[:, None] - rows_[None]) ** 2 + (cols_[:, None] - cols_[None]) ** 2).float().sqrt()
for d in dist.unique()[1:15]:  # 1, sqrt 2, 2, sqrt 5, ...
    axes[1].scatter(float(d), float(sim[dist == d].mean()), color="C0")
axes[1].axhline(0, color="k", lw=0.5)
axes[1].set(xlabel="distance between the two patches (in patches)", ylabel="mean cosine similarity",
            title="Nearby patches get similar position embeddings")
plt.tight_layout()
plt.show()
near = float(sim[(dist - 1).abs() < 1e-3].mean())
far = float(sim[dist >= 4].mean())
print(f"mean cosine similarity of neighbouring positions: {near:.2f}; of positions >= 4 patches apart: {far:.2f}")

# %% [markdown]
# Nobody told the model the patches lie on a grid: the table started as noise (std 0.02), and
# training pulled neighbouring positions together. With a short run the structure is faint but
# there; a long CIFAR run (FULL scale, or the paper's Figure 7) makes it crisp.
#
# ### Patch embeddings in two dimensions (t-SNE)
# One t-SNE of two sets of vectors from 10 test images: the patch embeddings alone, $x_n E$
# (left, coloured by how bright the patch is), and the same tokens plus their position embeddings
# (right, coloured by the patch's row in the grid). The printed norms say how much of each token
# is content and how much is position.

# %%
model = trained("learn")[0]
with torch.no_grad():
    sample = x_test[:SCALE.pick(smoke=10, full=40)]
    content = model.patch_embed(sample)  # (S, 64, D)
    with_pos = content + model.pos_embed[:, 1:]
    brightness = patchify(data.x_test[:len(sample)], 4).mean(-1)  # (S, 64)
points = TSNE(n_components=2, perplexity=30, init="pca", max_iter=SCALE.pick(smoke=500, full=1000), random_state=0).fit_transform(
    torch.cat([content.flatten(0, 1), with_pos.flatten(0, 1)]).numpy())
half = len(points) // 2
print(f"mean norm of a patch embedding: {content.norm(dim=-1).mean():.2f}; "
      f"of a position embedding: {model.pos_embed[0, 1:].norm(dim=-1).mean():.2f}")
row = torch.arange(64).repeat(len(sample)) // grid
fig, axes = plt.subplots(1, 2, figsize=(12, 5))
s0 = axes[0].scatter(points[:half, 0], points[:half, 1], c=brightness.flatten(), s=6, cmap="magma")
axes[0].set_title("patch embeddings x E, colour = patch brightness")
fig.colorbar(s0, ax=axes[0])
s1 = axes[1].scatter(points[half:, 0], points[half:, 1], c=row, s=6, cmap="viridis")
axes[1].set_title("x E + position, colour = grid row")
fig.colorbar(s1, ax=axes[1])
plt.tight_layout()
plt.show()

# %% [markdown]
# ### Without positions
# The model without positions sees a *bag* of patches: shuffle an image's patches and its
# prediction does not move at all (check below), while the model with positions changes its mind.

# %%
perm = torch.randperm(64)
shuffled = unpatchify(patchify(x_test[:200], 4)[:, perm], 4, (32, 32))
with torch.no_grad():
    for kind in ("learn", "none"):
        m, _, acc = trained(kind)
        same = (m(shuffled).argmax(1) == m(x_test[:200]).argmax(1)).float().mean()
        print(f"positions {kind:>5}: accuracy {acc:.1%}; prediction unchanged on "
              f"{same:.0%} of 200 images whose patches were shuffled")
compare("no positions: logits of shuffled == logits of original",
        trained("none")[0](shuffled).detach(), trained("none")[0](x_test[:200]).detach(), tol=1e-5)
fig, axes = plt.subplots(1, 2, figsize=(5, 2.5))
axes[0].imshow(data.x_test[0].permute(1, 2, 0))
axes[1].imshow(unpatchify(patchify(data.x_test[:1], 4)[:, perm], 4, (32, 32))[0].permute(1, 2, 0))
for ax, title in zip(axes, ("an image", "its patches shuffled")):
    ax.set_title(title)
    ax.axis("off")
plt.show()
print(f"notebook ran in {time.monotonic() - NOTEBOOK_START:.0f} s at {SCALE.value.upper()} scale")

# %% [markdown]
# ## 8. Reflect
#
# Not graded; next week assumes you can answer them.
#
# 1. How many tokens does a 224 x 224 image give with P = 14, 16 and 32? How many attention scores
#    per head and layer? At what patch size does attention cost as much as the MLP for D = 768?
# 2. Your `PatchEmbedding` and a `Conv2d` compute the same function. Which inductive biases of a
#    CNN does a ViT keep, and which does it give up?
# 3. The model without positions still classifies far above chance. What can it use? Name an
#    image pair it can never tell apart.
# 4. Why is the CLS token's position row kept out of the interpolation when the grid is resized?
#    What would go wrong if it were interpolated with the grid?
# 5. The learned table began as noise. What in the data pushes neighbouring positions together?
#    Would a dataset of randomly shuffled patches produce the same structure?
