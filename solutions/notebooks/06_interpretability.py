# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Week 6 · Interpretability: attention maps, rollout, gradients, heads, measured
#
# A ViT computes, in every block and every head, a T x T matrix of attention weights: who reads from
# whom. It is tempting to draw those matrices over the image and call the picture an explanation.
# This week you build the tools to draw them (extraction, rollout, gradient-weighted attention,
# per-head statistics, head ablation) and then do what most tutorials skip: you **measure** whether
# the pictures are right. The images come with the true object mask, so "does the map point at the
# object?" and "does the model need what the map points at?" get numbers, and the seed's question,
# attention visualisation vs gradient attribution, gets an answer from data.
#
# You write six small modules in `src/vitcourse/` (in an nbgrader assignment folder: `vitcourse/` next
# to this notebook): `attention_maps.py` (Task 6.1), `rollout.py` (6.2), `gradient_attention.py`
# (6.3), `head_stats.py` (6.4), `ablation.py` (6.5) and `faithfulness.py` (6.6).
#
# **The model and the data.** A small ViT (patch 4, width 64, 4 blocks of 4 heads, 142k parameters)
# trained by the course's command on generated *shape scenes*: one object per 32 x 32 image (six
# shapes, 10-30 % of the image) on a textured, cluttered background with a distractor ellipse. Its
# weights ship with the course (`data/models/shapes-vit.pt`, test accuracy 0.988; `data/README.md`
# says how they were made), so nothing trains here. At FULL scale section 8 repeats the attention-
# distance measurement of the ViT paper on a pretrained ViT-B/16.
#
# Each check prints a relative error next to the tolerance it expects. Those checks and the public
# tests (`vitgrade check 6`) are for feedback only; the hidden tests decide the grade. Every section
# says how long it took on the course's 2-core CPU machine at SMOKE scale (one torch thread, other jobs
# running): the whole notebook about 25 s, of which the first cell (imports, the model, the scenes)
# about 10 s.

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
from tqdm.auto import tqdm

from vitcourse.ablation import HeadAblation, head_importance
from vitcourse.attention_maps import AttentionRecorder
from vitcourse.checks import compare
from vitcourse.data import SCENE_CLASSES, sample_photos, shape_scenes
from vitcourse.faithfulness import delete_patches, deletion_auc, deletion_curve, mass_inside, pointing_game
from vitcourse.gradient_attention import gradient_weighted_attention, gradient_weighted_rule
from vitcourse.head_stats import (
    attention_entropy,
    attention_sparsity,
    cls_attention,
    head_statistics,
    mean_attention_distance,
)
from vitcourse.models import shapes_vit
from vitcourse.pretrained import load_timm
from vitcourse.rollout import attention_rollout, cls_relevance, fuse_heads
from vitcourse.scale import SCALE, Scale, scale_banner

print(scale_banner())
NOTEBOOK_START = time.monotonic()
torch.manual_seed(0)

VIT_B = "vit_base_patch16_224.augreg2_in21k_ft_in1k"
if SCALE is Scale.FULL:
    # Section 8 needs the pretrained ViT-B/16: without it the FULL run stops here, before any work.
    vit_b, vit_b_info = load_timm(VIT_B, require=True)

N_IMAGES = SCALE.pick(smoke=100, full=1000)  # test scenes every measurement below uses
SHOW = 10  # scenes in the pictures
shapes = shapes_vit("timm")  # timm's VisionTransformer with the shipped weights: its attention runs fused
model = shapes.model
test = shape_scenes("test", n=N_IMAGES)
x = shapes.normalize(test.images)  # (B, 3, 32, 32): the model's input
GRID, PATCH = shapes.grid_size, shapes.patch_size  # (8, 8), 4
truth = test.patch_fraction(PATCH)  # (B, 8, 8): how much of each patch is object
with torch.no_grad():
    logits = model(x)
accuracy = float((logits.argmax(1) == test.labels).float().mean())
print(f"{N_IMAGES} test scenes, {len(SCENE_CLASSES)} classes {SCENE_CLASSES}; accuracy here {accuracy:.3f}; "
      f"the object covers {float(test.area.mean()):.1%} of an image and {float((truth >= 0.5).float().mean()):.1%} "
      "of the patches count as object (at least half covered)")

fig, axes = plt.subplots(2, SHOW, figsize=(1.6 * SHOW, 3.4))
for i in range(SHOW):
    axes[0, i].imshow(test.images[i].permute(1, 2, 0))
    axes[0, i].set_title(SCENE_CLASSES[test.labels[i]], fontsize=9)
    axes[1, i].imshow((truth[i] >= 0.5).float(), cmap="gray", vmin=0, vmax=1)
for ax in axes.flat:
    ax.axis("off")
axes[1, 0].set_title("object patches", fontsize=8, loc="left")
plt.show()

# %% [markdown]
# ## 1. Task 6.1: reading the attention weights out of a model
#
# A forward hook, `module.register_forward_hook(fn)`, calls `fn(module, inputs, output)` every time
# the module runs; it returns a handle whose `remove()` takes it off again. So you can record a
# block's attention without touching the model's code, if you hook the right module:
#
# * your Week 2 `VisionTransformer`: `blocks[i].attn.core` is Week 1's `ScaledDotProductAttention`,
#   whose second output *is* the weights;
# * timm's `VisionTransformer`: by default `blocks[i].attn.fused_attn` is True and the block calls
#   `F.scaled_dot_product_attention`, a fused kernel in which the (B, nH, T, T) weights never exist.
#   With the flag False it takes the explicit path, `softmax(q k^T * scale)` then `attn_drop`: switch
#   it off while recording, hook `attn_drop`, and switch it back afterwards.
#
# Implement `AttentionRecorder` in `attention_maps.py` as a context manager: `__enter__` registers the
# hooks (and turns the fused path off), `__exit__` removes every hook and restores every flag *as it
# found it*, also when the `with` block raises. A model you explain must come out exactly as it went
# in: same outputs, no hook left behind, not a slower model. The check below compares your weights with
# a recomputation from each block's qkv weights, on timm's ViT and on your Week 2 ViT (the same
# weights load into both: the parameter names are the same).

# %%
def recompute_attention(vit, images: torch.Tensor) -> torch.Tensor:
    """(L, B, nH, T, T) from each block's qkv weights and its input (the output of norm1), without any hook
    on the attention itself: the reference for the recorder."""
    inputs = []
    handles = [b.norm1.register_forward_hook(lambda m, a, out: inputs.append(out)) for b in vit.blocks]
    with torch.no_grad():
        vit(images)
        for h in handles:
            h.remove()
        maps = []
        for block, z in zip(vit.blocks, inputs):
            b, t, _ = z.shape
            qkv = block.attn.qkv(z).reshape(b, t, 3, block.attn.num_heads, -1)  # (B, T, 3, nH, Dh)
            q, k = qkv[:, :, 0].transpose(1, 2), qkv[:, :, 1].transpose(1, 2)  # (B, nH, T, Dh)
            maps.append((q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).softmax(-1))
    return torch.stack(maps)


def hooks_on(vit) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in vit.modules())


few = x[:8]
with torch.no_grad():
    before = model(few)
flags_before = [b.attn.fused_attn for b in model.blocks]
with torch.no_grad(), AttentionRecorder(model) as recorder:
    inside = model(few)
compare("timm ViT (fused attention): your weights vs a recomputation from qkv", recorder.stacked(),
        recompute_attention(model, few))
compare("timm ViT: logits inside the recorder vs without it", inside, before)
print(f"hooks left on the model: {hooks_on(model)}; fused_attn flags before {flags_before}, "
      f"after {[b.attn.fused_attn for b in model.blocks]}")

# %% [markdown]
# The same weights in your Week 2 model (this cell needs your `vitcourse.vit`; if Week 2 is
# unfinished it stops with Week 2's message, and the rest of the notebook runs on timm's model):

# %%
course = shapes_vit("course")
with torch.no_grad(), AttentionRecorder(course.model) as recorder:
    course_logits = course.model(few)
compare("your Week 2 ViT: your weights vs a recomputation from qkv", recorder.stacked(),
        recompute_attention(course.model, few))
compare("your Week 2 ViT vs timm's ViT, same weights: logits", course_logits, before, tol=1e-5)


# %% [markdown]
# Every analysis below reads the weights of the same test scenes once, through your recorder:

# %%
@cache
def recorded() -> torch.Tensor:
    """(L, B, nH, T, T) attention of the model on the N_IMAGES test scenes, recorded with your AttentionRecorder
    (in eval mode: the softmax weights). Cells ask for it instead of reusing a variable."""
    with torch.no_grad(), AttentionRecorder(model) as rec:
        model(x)
    return rec.stacked()


start = time.monotonic()
attention = recorded()
print(f"attention of {N_IMAGES} scenes: {tuple(attention.shape)} = (L, B, nH, T, T), rows sum to 1 within "
      f"{float((attention.sum(-1) - 1).abs().max()):.1e}; {time.monotonic() - start:.1f} s")

# %% [markdown]
# What each block's CLS token reads from, averaged over the heads, for ten scenes: the raw material
# every "attention map" is made of. (Section 1 takes about 3 s at SMOKE, 2 of them for this figure.)

# %%
def overlay(ax, image: torch.Tensor, relevance: torch.Tensor, title: str = "") -> None:
    """The image with a relevance map (h, w) on top, upsampled to the image's size."""
    heat = F.interpolate(relevance[None, None].float(), size=image.shape[-2:], mode="bilinear",
                         align_corners=False)[0, 0]
    ax.imshow(image.permute(1, 2, 0))
    ax.imshow(heat / heat.max().clamp_min(1e-12), cmap="inferno", alpha=0.6, vmin=0, vmax=1)
    ax.set_title(title, fontsize=8)
    ax.axis("off")


attention = recorded()
layers = attention.shape[0]
fig, axes = plt.subplots(SHOW, layers + 1, figsize=(1.7 * (layers + 1), 1.7 * SHOW))
for i in range(SHOW):
    axes[i, 0].imshow(test.images[i].permute(1, 2, 0))
    axes[i, 0].axis("off")
    axes[i, 0].set_title(SCENE_CLASSES[test.labels[i]], fontsize=8)
    for layer in range(layers):
        cls_row = attention[layer, i].mean(0)[0, 1:].reshape(GRID)  # heads averaged, CLS row, patch columns
        overlay(axes[i, layer + 1], test.images[i], cls_row, f"block {layer + 1}" if i == 0 else "")
plt.suptitle("CLS attention, mean over heads, block by block", y=1.0)
plt.tight_layout()
plt.show()

# %% nbgrader={"grade": true, "grade_id": "task_6_1", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 6.1: the hidden tests run here when your work is graded.
### BEGIN HIDDEN TESTS
from vitgrade.autograde.nbcell import grade_task  # noqa: E402

grade_task("6.1")
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Task 6.2: attention rollout
#
# One block's map says where the CLS token reads from *in that block*; but the tokens it reads have
# already mixed with others in earlier blocks, and the residual connection carries every token's own
# information past each attention. Abnar & Zuidema (2020) follow the flow through all of it: per block,
# fuse the heads, model the skip connection as attention to oneself, renormalise, and multiply:
#
# $$\hat A_l = \mathrm{rownorm}\big((1-r)\,A_l + r\,I\big), \qquad R = \hat A_L \cdots \hat A_2 \hat A_1 .$$
#
# Implement `fuse_heads`, `discard_lowest`, `attention_rollout` and `cls_relevance` in `rollout.py`.
# Mind the order (the first block is the rightmost factor), renormalise every row (max and min fusion
# do not keep the rows summing to 1, discarding takes weight away), and never discard the CLS column.

# %%
toy = torch.rand(3, 2, 4, 5, 5).softmax(-1)  # (L, B, nH, T, T)
compare("rollout of identity attention is the identity", attention_rollout(torch.eye(5).expand(3, 2, 4, 5, 5)),
        torch.eye(5).expand(2, 5, 5))
compare("one block, r = 0.5: (A + I) / 2", attention_rollout(toy[:1]), (toy[0].mean(1) + torch.eye(5)) / 2)
by_hand = torch.eye(5)
for block in toy:
    a_hat = 0.5 * block.amax(1) + 0.5 * torch.eye(5)
    by_hand = (a_hat / a_hat.sum(-1, keepdim=True)) @ by_hand
compare("max fusion, three blocks, by hand", attention_rollout(toy, head_fusion="max"), by_hand)
print("rows of a max-fusion rollout sum to", attention_rollout(toy, head_fusion="max").sum(-1)[0].tolist())

# %% [markdown]
# The rollout maps of the same ten scenes next to the last block's raw CLS attention, and what a
# discard ratio (keep only the strongest 10 % of each block's weights) does. About 1 s at SMOKE.

# %%
start = time.monotonic()
rollout_maps = cls_relevance(attention_rollout(recorded()), GRID)  # (B, 8, 8)
discarded = cls_relevance(attention_rollout(recorded(), head_fusion="max", discard_ratio=0.9), GRID)
raw_last = cls_relevance(fuse_heads(recorded()[-1]), GRID)
columns = (("last block", raw_last), ("rollout (mean)", rollout_maps), ("rollout max, discard 0.9", discarded))
fig, axes = plt.subplots(len(columns) + 1, SHOW, figsize=(1.6 * SHOW, 1.7 * (len(columns) + 1)))
for i in range(SHOW):
    axes[0, i].imshow(test.images[i].permute(1, 2, 0))
    axes[0, i].axis("off")
    for row, (name, maps) in enumerate(columns, start=1):
        overlay(axes[row, i], test.images[i], maps[i], name if i == 0 else "")
plt.tight_layout()
plt.show()
print(f"{time.monotonic() - start:.1f} s")

# %% nbgrader={"grade": true, "grade_id": "task_6_2", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 6.2: the hidden tests run here when your work is graded.
### BEGIN HIDDEN TESTS
from vitgrade.autograde.nbcell import grade_task  # noqa: E402

grade_task("6.2")
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Task 6.3: gradient-weighted attention
#
# Rollout never asks which class it explains: it draws the same map for "circle" and for "cross",
# and trusts every head alike. Chefer, Gur & Wolf (ICCV 2021) weight each attention weight by the
# gradient of the class score $y_c$ with respect to it, keep what speaks *for* the class, and
# accumulate with the residual built in:
#
# $$\bar A_l = \mathbb{E}_h\big[(\nabla_{A_l} y_c \odot A_l)^+\big], \qquad R \leftarrow R + \bar A_l R
# \quad (R = I \text{ at the start, blocks in order}).$$
#
# Implement `gradient_weighted_rule` and `gradient_weighted_attention` in `gradient_attention.py`.
# Record with `AttentionRecorder(model, detach=False)` so the weights stay in the graph, and take the
# gradient with `torch.autograd.grad(score, recorder.weights)`: the parameters get no `.grad`.

# %%
grads = torch.randn(3, 2, 4, 5, 5)
by_hand = torch.eye(5).expand(2, 5, 5)
for a, g in zip(toy, grads):
    by_hand = by_hand + (g * a).clamp(min=0).mean(1) @ by_hand
compare("gradient_weighted_rule vs the formula, by hand", gradient_weighted_rule(toy, grads), by_hand)
compare("zero gradients: R stays the identity", gradient_weighted_rule(toy, torch.zeros_like(toy)),
        torch.eye(5).expand(2, 5, 5))

# %% [markdown]
# The same scene explained for its own class and for another one. About 2 s at SMOKE.

# %%
@cache
def gradient_maps(target: int | None = None) -> torch.Tensor:
    """(B, 8, 8) gradient-weighted relevance of the N_IMAGES scenes for ``target`` (None: the predicted class)."""
    relevance, _ = gradient_weighted_attention(model, x, target)
    return cls_relevance(relevance, GRID)


start = time.monotonic()
own = gradient_maps()
fig, axes = plt.subplots(3, SHOW, figsize=(1.6 * SHOW, 5.2))
other_class = 4  # "cross"
other = gradient_maps(other_class)
for i in range(SHOW):
    axes[0, i].imshow(test.images[i].permute(1, 2, 0))
    axes[0, i].axis("off")
    overlay(axes[1, i], test.images[i], own[i], f"for {SCENE_CLASSES[logits[i].argmax()]}")
    overlay(axes[2, i], test.images[i], other[i], f"for {SCENE_CLASSES[other_class]}")
plt.tight_layout()
plt.show()
print(f"{len(x)} scenes in {time.monotonic() - start:.1f} s; parameters with a .grad afterwards: "
      f"{sum(p.grad is not None for p in model.parameters())}")

# %% nbgrader={"grade": true, "grade_id": "task_6_3", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 6.3: the hidden tests run here when your work is graded.
### BEGIN HIDDEN TESTS
from vitgrade.autograde.nbcell import grade_task  # noqa: E402

grade_task("6.3")
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Task 6.4: what each head does, in numbers
#
# The ViT paper (Dosovitskiy et al. 2021, Figure 7) summarises a head by its **mean attention
# distance**: how far, in pixels, the patches it attends to lie from the query, weighted by the
# attention. It found some heads in the lowest layers already attending globally, others locally,
# and the distance rising with depth. Implement the four statistics of `head_stats.py`: the distance
# (pixels, patch keys only, not renormalised), the entropy (nats, over the patch keys, renormalised),
# the attention patches pay to the CLS token, and the Gini sparsity (formula in the module). Hand-built
# patterns first, where you know the answers:

# %%
n = 16
eye = torch.zeros(1, 1, n + 1, n + 1)
eye[0, 0, 1:, 1:] = torch.eye(n)
eye[0, 0, 0, 0] = 1
uniform = torch.full((1, 1, n + 1, n + 1), 1 / (n + 1))
neighbour = torch.zeros(1, 1, n + 1, n + 1)
for i in range(n):  # a 4 x 4 grid: every patch reads the patch to its right (the last column: its left)
    neighbour[0, 0, 1 + i, 1 + i + (1 if i % 4 < 3 else -1)] = 1
compare("identity: distance 0", mean_attention_distance(eye, (4, 4), 8), torch.zeros(1))
compare("identity: entropy 0", attention_entropy(eye), torch.zeros(1))
compare("uniform: entropy log 16 (over the patches)", attention_entropy(uniform), torch.tensor([math.log(16)]))
compare("uniform: weight on CLS 1/17", cls_attention(uniform), torch.tensor([1 / 17]))
compare("uniform: Gini 0", attention_sparsity(uniform), torch.zeros(1), tol=1e-5)
compare("right neighbour, 8-pixel patches: distance 8 pixels", mean_attention_distance(neighbour, (4, 4), 8),
        torch.tensor([8.0]))

# %% [markdown]
# The model's heads. Under 1 s at SMOKE.

# %%
@cache
def statistics() -> dict[str, torch.Tensor]:
    """{"distance", "entropy", "cls", "sparsity"}: each (L, nH), over the N_IMAGES scenes."""
    return head_statistics(recorded(), GRID, PATCH)


stats = statistics()
depth, heads = stats["distance"].shape
fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
for h in range(heads):
    axes[0].scatter(np.arange(1, depth + 1), stats["distance"][:, h], s=25, label=f"head {h}")
axes[0].plot(np.arange(1, depth + 1), stats["distance"].mean(1), "k--", label="mean")
cells = torch.cartesian_prod(torch.arange(8.0), torch.arange(8.0))  # (64, 2): every patch's (row, column)
axes[0].axhline(PATCH * float(torch.cdist(cells, cells).mean()), color="gray", ls=":",
                label="uniform over the patches")
axes[0].set(xlabel="block", ylabel="mean attention distance (pixels)", title="attention distance by depth",
            xticks=range(1, depth + 1))
axes[0].legend(fontsize=7)
for ax, key, title in ((axes[1], "distance", "distance (pixels)"), (axes[2], "entropy", "entropy (nats)")):
    image = ax.imshow(stats[key].T, cmap="viridis")
    ax.set(xlabel="block", ylabel="head", title=title, xticks=range(depth), xticklabels=range(1, depth + 1),
           yticks=range(heads))
    for (layer, h), value in np.ndenumerate(stats[key].numpy()):
        ax.text(layer, h, f"{value:.1f}", ha="center", va="center", color="w", fontsize=8)
    plt.colorbar(image, ax=ax)
plt.tight_layout()
plt.show()
for key, unit in (("distance", "px"), ("entropy", "nats"), ("cls", ""), ("sparsity", "")):
    print(f"{key:>9} by block (mean over heads): " + "  ".join(f"{v:.3f}" for v in stats[key].mean(1).tolist())
          + f" {unit}   range over heads in block 1: {float(stats[key][0].min()):.3f} .. {float(stats[key][0].max()):.3f}")
print(f"uniform attention over 8 x 8 patches would give entropy {math.log(64):.3f} nats and Gini 0")

# %% nbgrader={"grade": true, "grade_id": "task_6_4", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 6.4: the hidden tests run here when your work is graded.
### BEGIN HIDDEN TESTS
from vitgrade.autograde.nbcell import grade_task  # noqa: E402

grade_task("6.4")
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Task 6.5: which heads does the model need?
#
# A picture cannot tell a redundant head from a critical one; removing it can. Each block's attention
# output is `proj(concat of the heads)`, head h in features h*Dh .. (h+1)*Dh - 1 of proj's input: zero
# that slice with a forward *pre*-hook on `attn.proj` and head h is gone, nothing else. Implement
# `HeadAblation` (a context manager, like the recorder) and `head_importance` in `ablation.py`. The
# check: ablating a head must equal zeroing its columns of W^O by hand.

# %%
block_index, head_index = 1, 2
head_dim = model.blocks[block_index].attn.head_dim
eight = x[:8]
with torch.no_grad():
    intact = model(eight)
with torch.no_grad(), HeadAblation(model, [(block_index, head_index)]):
    ablated = model(eight)
edited = shapes_vit("timm", verbose=False).model
with torch.no_grad():
    edited.blocks[block_index].attn.proj.weight[:, head_index * head_dim:(head_index + 1) * head_dim] = 0
    by_hand = edited(eight)
compare(f"HeadAblation(block {block_index}, head {head_index}) vs its columns of W^O set to 0", ablated, by_hand)
with torch.no_grad():
    compare("after the with-block the model is unchanged", model(eight), intact)

# %% [markdown]
# Every head in turn, on the test scenes. About 1 s at SMOKE.

# %%
@cache
def importance() -> dict:
    return head_importance(model, x, test.labels)


ranked, stats = importance(), statistics()
fig, ax = plt.subplots(figsize=(10, 3.2))
names = [f"{b + 1}.{h}" for b, h in ranked["ranking"]]
ax.bar(names, [float(ranked["delta_loss"][b, h]) for b, h in ranked["ranking"]])
ax.set(xlabel="block.head, most important first", ylabel="loss increase when removed",
       title=f"removing one head at a time (intact: loss {ranked['loss']:.3f}, accuracy {ranked['accuracy']:.3f})")
plt.show()
for b, h in ranked["ranking"][:3] + ranked["ranking"][-3:]:
    print(f"block {b + 1} head {h}: loss {float(ranked['delta_loss'][b, h]):+.3f}, accuracy "
          f"{float(ranked['delta_accuracy'][b, h]):+.3f}; its distance {float(stats['distance'][b, h]):.1f} px, "
          f"entropy {float(stats['entropy'][b, h]):.2f} nats")

# %% nbgrader={"grade": true, "grade_id": "task_6_5", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 6.5: the hidden tests run here when your work is graded.
### BEGIN HIDDEN TESTS
from vitgrade.autograde.nbcell import grade_task  # noqa: E402

grade_task("6.5")
### END HIDDEN TESTS

# %% [markdown]
# ## 6. Task 6.6: is a map right?
#
# Two questions, and they are not the same:
#
# * **Localisation**: does the map point at the object? The *pointing game* (is the map's top patch
#   an object patch?) and the *mass inside* (what share of the map lies on object patches). A patch
#   counts as object when the object covers at least half of it: counted on patches that merely touch
#   the object, almost every map would score near 1 on these scenes.
# * **Faithfulness**: does the *model* need what the map points at? The *deletion curve*: remove the
#   most relevant patches first (fill them with the image's mean colour), and watch the accuracy fall.
#   The area under it (fraction removed on the x-axis) is small for a faithful map.
#
# Implement `deletion_order`, `delete_patches`, `deletion_curve`, `deletion_auc`, `pointing_game` and
# `mass_inside` in `faithfulness.py`. The checks use a map you can verify by eye.

# %%
ramp = torch.arange(64.0).reshape(1, 8, 8)  # the bottom-right patch is the most relevant
one = test.images[:1]
gone = delete_patches(one, ramp, 8, PATCH)
compare("8 patches removed: the bottom row is the image's mean colour", gone[0, :, 28:, :],
        one[0].mean(dim=(1, 2))[:, None, None].expand(3, 4, 32))
compare("the rest is untouched", gone[0, :, :28], one[0, :, :28])
compare("pointing game on the true object map", pointing_game(truth[:5], truth[:5]).float(), torch.ones(5))
compare("deletion_auc of a curve falling linearly from 1 to 0", torch.tensor(deletion_auc([0, 32, 64], [1.0, 0.5, 0.0],
                                                                                          64)), torch.tensor(0.5))

# %% [markdown]
# Five maps for every scene: the last block's CLS attention (mean over heads), rollout, gradient-
# weighted attention for the predicted class, a random map, and the true object map (how much of each
# patch is object) as a yardstick. The curves fall to chance within the first third of the patches,
# so the steps are fine there and coarse after. About 4 s at SMOKE (100 scenes x 5 maps x 15 steps).

# %%
STEPS = list(range(0, 22, 2)) + [24, 32, 48, 64]


@cache
def method_maps() -> dict[str, torch.Tensor]:
    """Every method's (B, 8, 8) map of the N_IMAGES scenes."""
    attention = recorded()
    return {"raw attention (last block)": cls_relevance(fuse_heads(attention[-1]), GRID),
            "rollout": cls_relevance(attention_rollout(attention), GRID),
            "gradient-weighted": gradient_maps(),
            "random": torch.rand(len(x), *GRID, generator=torch.Generator().manual_seed(0)),
            "true object map": truth}


@cache
def faithfulness_table() -> dict[str, dict]:
    table = {}
    for name, maps in tqdm(method_maps().items(), desc="deletion curves"):
        ks, curve = deletion_curve(model, x, test.labels, maps, PATCH, steps=STEPS)
        table[name] = {"pointing": float(pointing_game(maps, truth).float().mean()),
                       "mass": float(mass_inside(maps, truth).mean()), "auc": deletion_auc(ks, curve, 64),
                       "ks": ks, "curve": curve}
    return table


start = time.monotonic()
table = faithfulness_table()
print(f"{'map':<28}{'pointing game':>15}{'mass inside':>13}{'deletion AUC':>14}   ({N_IMAGES} scenes; "
      "AUC: lower = more faithful)")
for name, row in table.items():
    print(f"{name:<28}{row['pointing']:>15.3f}{row['mass']:>13.3f}{row['auc']:>14.3f}")
print(f"object share of the patches (what a random map's mass inside should be): "
      f"{float((truth >= 0.5).float().mean()):.3f}; chance accuracy 1/6 = {1 / 6:.3f}; "
      f"{time.monotonic() - start:.1f} s")
fig, axes = plt.subplots(1, 2, figsize=(13, 4))
for name, row in table.items():
    axes[0].plot(row["ks"], row["curve"], "o-", ms=3, label=f"{name} (AUC {row['auc']:.3f})")
axes[0].axhline(1 / 6, color="gray", ls=":", label="chance")
axes[0].set(xlabel="patches removed (most relevant first)", ylabel="accuracy", title="deletion curves")
axes[0].legend(fontsize=8)
for i, name in enumerate(table):
    axes[1].bar(i - 0.2, table[name]["pointing"], 0.4, color="C0", label="pointing game" if i == 0 else None)
    axes[1].bar(i + 0.2, table[name]["mass"], 0.4, color="C1", label="mass inside" if i == 0 else None)
axes[1].set_xticks(range(len(table)), [n.replace(" (", "\n(") for n in table], fontsize=8)
axes[1].set(title="localisation (object patches: >= 50 % object)")
axes[1].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% nbgrader={"grade": true, "grade_id": "task_6_6", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 6.6: the hidden tests run here when your work is graded.
### BEGIN HIDDEN TESTS
from vitgrade.autograde.nbcell import grade_task  # noqa: E402

grade_task("6.6")
### END HIDDEN TESTS

# %% [markdown]
# ## 7. What the numbers say
#
# Each sentence below is computed from the table and the statistics printed above (so it stays true
# if you change the number of scenes or the model): read it against them. Then the questions the
# numbers cannot settle alone.

# %%
def findings() -> list[str]:
    t, s, r = faithfulness_table(), statistics(), importance()
    raw, roll, grad, rand, true = (t[k] for k in ("raw attention (last block)", "rollout", "gradient-weighted",
                                                   "random", "true object map"))
    best_local = max(("raw attention (last block)", "rollout", "gradient-weighted"), key=lambda k: t[k]["pointing"])
    best_faith = min(("raw attention (last block)", "rollout", "gradient-weighted"), key=lambda k: t[k]["auc"])
    lines = [
        f"Localisation: {best_local} points at the object most often (pointing game {t[best_local]['pointing']:.2f}; "
        f"raw {raw['pointing']:.2f}, rollout {roll['pointing']:.2f}, gradient-weighted {grad['pointing']:.2f}, "
        f"random {rand['pointing']:.2f}).",
        f"Faithfulness: {best_faith} has the smallest deletion area ({t[best_faith]['auc']:.3f}; raw "
        f"{raw['auc']:.3f}, rollout {roll['auc']:.3f}, gradient-weighted {grad['auc']:.3f}, random {rand['auc']:.3f}, "
        f"the true object map {true['auc']:.3f}).",
        ("The two rankings agree" if best_local == best_faith else "The two rankings disagree")
        + f": the map that points best is {'also' if best_local == best_faith else 'not'} the one the model "
        "needs most.",
        f"The true object map is {'beaten' if min(raw['auc'], roll['auc'], grad['auc']) < true['auc'] else 'not beaten'} "
        f"on deletion by an explanation ({min(raw['auc'], roll['auc'], grad['auc']):.3f} vs {true['auc']:.3f}): "
        "the model's evidence is not simply 'the object, evenly'.",
        f"Raw last-block attention removes the evidence more slowly than rollout (deletion area {raw['auc']:.3f} "
        f"against {roll['auc']:.3f}; random {rand['auc']:.3f}) and puts {raw['mass']:.2f} of its mass on the object "
        f"(random: {rand['mass']:.2f}, the object's share of the patches)." if raw["auc"] > roll["auc"] else
        f"Raw last-block attention removes the evidence at least as fast as rollout (deletion area {raw['auc']:.3f} "
        f"against {roll['auc']:.3f}).",
        "Attention distance by block (mean over heads): " + ", ".join(f"{v:.1f}" for v in s["distance"].mean(1).tolist())
        + " px: " + ("rising with depth at every step" if bool((s["distance"].mean(1).diff() > 0).all()) else
                     "not rising at every step") + f"; block 1's heads span {float(s['distance'][0].min()):.1f} .. "
        f"{float(s['distance'][0].max()):.1f} px on a 32-pixel image.",
        "Entropy by block: " + ", ".join(f"{v:.2f}" for v in s["entropy"].mean(1).tolist())
        + f" nats (uniform: {math.log(64):.2f}); attention to CLS by block: "
        + ", ".join(f"{v:.3f}" for v in s["cls"].mean(1).tolist()) + ".",
        f"The most important head is block {r['ranking'][0][0] + 1} head {r['ranking'][0][1]} (loss "
        f"{float(r['delta_loss'][r['ranking'][0]]):+.3f}); {int((r['delta_accuracy'] > -0.01).sum())} of "
        f"{r['delta_accuracy'].numel()} heads can go alone for less than 1 point of accuracy.",
    ]
    return lines


for line in findings():
    print("-", line)

# %% [markdown]
# **How to read them.** Raw attention in one block is where the CLS token reads *in that block*,
# from tokens that have long since mixed with their neighbours; it ignores the residual stream, which
# carries most of the information past every attention layer. That is why the last block's raw map
# can sit near the random map in the table: in a 4-block model the CLS token's last read is one step
# of a longer path. Rollout puts the residual and the earlier blocks back. Gradient weighting asks
# the model which weights matter *for the class* and drops the heads that speak against it; it need
# not localise better than rollout (the object's edges and corners, not its whole area, decide
# between a square and a diamond), and the deletion area, not the picture, says whether it is more
# faithful. Localisation and faithfulness are different questions and can rank the methods
# differently (the findings above say whether they do here): report both, never just the prettier
# picture. With 100 scenes at SMOKE a difference of a few hundredths in the deletion area is within
# the noise of the sample; the FULL run uses 1,000.
#
# **Where this small model is not ViT-B.** It has 4 blocks and was trained on 6,000 synthetic scenes
# from a convolution-like (mimetic) start. Its block-1 heads already read from about a third of the
# 32-pixel image, not from a neighbourhood (the printed distances), the distance grows by a few
# pixels over four blocks, and the patches pay almost no attention to the CLS token (the printed CLS
# shares). The ViT paper's Figure 7 shows, for a ViT pretrained on ImageNet-21k / JFT, heads in the
# lowest layers that already attend across most of the image next to heads that stay local, and a
# mean distance that grows over many more layers. Section 8 measures that on ViT-B/16 at FULL scale;
# nothing printed at SMOKE says anything about a pretrained ViT.

# %% [markdown]
# ## 8. FULL scale: attention distance in a pretrained ViT-B/16
#
# Dosovitskiy et al. report that mean attention distance rises with depth and that early layers
# already hold both local and global heads. At FULL scale this section measures it on
# `vit_base_patch16_224.augreg2_in21k_ft_in1k` (12 blocks x 12 heads, 14 x 14 patches of 16 pixels)
# with your recorder and your `mean_attention_distance`, on scikit-image's photographs and their
# mirror images, and prints the per-block means, the range over heads and the Spearman rank
# correlation between depth and distance. It needs the pretrained weights (the first cell stopped
# the FULL run if they are missing). **At SMOKE scale it does not run: no number for ViT-B is
# measured here**, and none should be read into the small model's.

# %%
if SCALE is Scale.FULL:
    vit_b.eval()
    cfg = vit_b.pretrained_cfg
    mean_b, std_b = torch.tensor(cfg["mean"]).view(1, 3, 1, 1), torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    photos = torch.stack([image for _, image in sample_photos(224)])
    photos = torch.cat([photos, photos.flip(-1)])  # (14, 3, 224, 224)
    distances = []
    for image in tqdm(photos, desc="ViT-B/16 photos"):
        with torch.no_grad(), AttentionRecorder(vit_b) as rec:
            vit_b((image[None] - mean_b) / std_b)
        distances.append(torch.stack([mean_attention_distance(a, (14, 14), 16) for a in rec.weights]))  # (12, 12)
    per_head = torch.stack(distances).mean(0)  # (L, nH)
    per_layer = per_head.mean(1)
    ranks = per_layer.argsort().argsort().float()
    depth_ranks = torch.arange(len(per_layer), dtype=torch.float)
    spearman = float(torch.corrcoef(torch.stack([depth_ranks, ranks]))[0, 1])
    print("mean attention distance by block (px):", " ".join(f"{v:.0f}" for v in per_layer.tolist()))
    print("range over heads, block 1:", f"{float(per_head[0].min()):.0f} .. {float(per_head[0].max()):.0f} px;",
          f"block 12: {float(per_head[-1].min()):.0f} .. {float(per_head[-1].max()):.0f} px")
    print(f"Spearman rank correlation between depth and mean distance: {spearman:.2f}")
    plt.figure(figsize=(6, 4))
    for h in range(per_head.shape[1]):
        plt.scatter(np.arange(1, 13), per_head[:, h], s=12)
    plt.plot(np.arange(1, 13), per_layer, "k--")
    plt.xlabel("block")
    plt.ylabel("mean attention distance (pixels)")
    plt.title(f"ViT-B/16 on {len(photos)} photographs")
    plt.show()
else:
    print("SMOKE scale: the pretrained ViT-B/16 is not loaded and nothing about it is measured here. "
          "Run with VIT_SCALE=full (weights cached or online) for this section.")
print(f"notebook ran in {time.monotonic() - NOTEBOOK_START:.0f} s at {SCALE.value.upper()} scale")

# %% [markdown]
# ## 9. Reflect
#
# Not graded; Week 7 builds on them.
#
# 1. Why must rollout add the identity, and why 0.5? What would rollout of a model whose residual
#    stream carried nothing (r = 0) look like after 12 blocks?
# 2. Gradient-weighted attention explains a class; rollout does not. Find a scene in section 3 where
#    the map for a wrong class points somewhere else, and one where it does not. What does the second
#    kind tell you?
# 3. A head whose removal costs nothing: redundant, or doing something the test set never needs?
#    How would you tell the two apart?
# 4. Compare the true object map's deletion area with the explanations' in section 6. How can a map
#    that points exactly at the object fail to be the most faithful one? (Hint: what does deleting a
#    patch from the middle of a solid square remove, and what does deleting a corner remove?)
# 5. The seed's question: what is the difference between attention visualisation and gradient-based
#    attribution? Answer with the table of section 6, not with a definition.
