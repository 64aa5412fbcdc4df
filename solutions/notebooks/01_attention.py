# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Week 1 · The Engine Room: attention from scratch
#
# This week you build the one operation every later week stands on: **scaled dot-product
# attention**, and its multi-head wrapper. You write the code in `src/vitcourse/attention.py`
# (in an nbgrader assignment folder: `vitcourse/attention.py` next to this notebook); this
# notebook checks each piece right after you write it, then puts it to work on a toy task that
# only a correct implementation can solve.
#
# Each check prints a relative error next to the tolerance it expects. Those checks and the
# public tests (`vitgrade check 1`) are for feedback only; the hidden tests decide the grade.
#
# **Rules of the week** (the hidden tests enforce them):
# 1. No Python loop over tokens or heads: batched matrix algebra only (`torch.einsum` encouraged).
# 2. No `nn.MultiheadAttention` or `F.scaled_dot_product_attention` in your module: they are what
#    you are compared against.
# 3. An optional mask of shape (B, 1, 1, Lk), `True`/1 = attend, `False`/0 = padding.
#
# *At SMOKE scale on the 2-core machine, imports and data take about 4 s; every section
# states its own time (all measured 2026-12-04, under load).*

# %%
# %load_ext autoreload
# %autoreload 2
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from vitcourse.attention import MultiHeadAttention, ScaledDotProductAttention
from vitcourse.checks import compare
from vitcourse.scale import SCALE, scale_banner

print(scale_banner())
torch.manual_seed(0)

# %% [markdown]
# ## 1. The formula, by hand
#
# $$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{Q K^\top}{\sqrt{d_h}}\right) V$$
#
# Each query scores every key with a dot product; the softmax over the keys turns a row of scores
# into weights that sum to 1; the output is the weighted average of the values. Dividing by
# $\sqrt{d_h}$ keeps the scores' spread independent of the head width: for random unit-variance
# vectors a dot product of length $d_h$ has variance $d_h$, and a softmax fed scores that large
# saturates to a one-hot row whose gradient is almost zero.
#
# A case small enough to do on paper, with $d_h = 4$ (so the scale is $1/2$), one query
# $q = (2, 0, 0, 0)$ and three keys and values:
#
# | key | $k_j$ | $q \cdot k_j / 2$ | value $v_j$ |
# |---|---|---|---|
# | 1 | (1, 0, 0, 0) | 1 | (1, 0) |
# | 2 | (0, 1, 0, 0) | 0 | (0, 1) |
# | 3 | (1, 1, 0, 0) | 1 | (10, 10) |
#
# The weights are $(e, 1, e) / (2e + 1) = (0.422, 0.155, 0.422)$ and the output is
# $0.422\,(1, 0) + 0.155\,(0, 1) + 0.422\,(10, 10) = (4.65, 4.38)$. Mask out key 3 and the weights
# become $(e, 1, 0)/(e + 1) = (0.731, 0.269, 0)$, the output $(0.731, 0.269)$.

# %% [markdown]
# ## 2. Task 1.1: `ScaledDotProductAttention`
#
# Open `attention.py` and implement `ScaledDotProductAttention.__init__` and `forward`:
# scores with `einsum` over the head dimension, scaled by $1/\sqrt{d_h}$; masked scores **set** to
# `-1e9` before the softmax; softmax over the keys; dropout on the weights after the softmax; then
# the weighted sum of the values. Return `(context, weights)`, shapes (B, nH, Lq, Dh) and
# (B, nH, Lq, Lk). One more argument, `bias`: when given, add it to the scaled scores before the
# mask (Swin adds a learned bias per relative position this way in Week 4). Then run the cells below.
#
# *At SMOKE scale on the 2-core machine: under a second (measured 2026-12-04, under load).*

# %%
e = math.e
q = torch.tensor([[2.0, 0, 0, 0]]).view(1, 1, 1, 4)  # (B=1, nH=1, Lq=1, Dh=4)
k = torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0]]).view(1, 1, 3, 4)
v = torch.tensor([[1.0, 0], [0, 1], [10, 10]]).view(1, 1, 3, 2)
attention = ScaledDotProductAttention(head_dim=4)
context, weights = attention(q, k, v)
hand_weights = torch.tensor([e, 1, e]) / (2 * e + 1)
compare("hand example: weights", weights.flatten(), hand_weights)
compare("hand example: context", context.flatten(), hand_weights @ v.view(3, 2))

# %% [markdown]
# Now random tensors with all-different sizes, so a swapped axis cannot hide, against PyTorch's
# own fused kernel.

# %%
B, nH, LQ, LK, DH = 2, 3, 5, 7, 8
q, k, v = torch.randn(B, nH, LQ, DH), torch.randn(B, nH, LK, DH), torch.randn(B, nH, LK, DH)
context, weights = ScaledDotProductAttention(DH)(q, k, v)
print("context", tuple(context.shape), "weights", tuple(weights.shape))
compare("context vs F.scaled_dot_product_attention", context,
        F.scaled_dot_product_attention(q, k, v), tol=1e-5)
compare("rows of the weights sum to 1", weights.sum(-1), torch.ones(B, nH, LQ), tol=1e-6)

# %% [markdown]
# ### Masking
# A padded batch: the first sequence has 7 real keys, the second only 4. The mask has shape
# (B, 1, 1, Lk) and broadcasts over heads and queries. Masked keys must get exactly zero weight.
# PyTorch's boolean `attn_mask` uses the same convention (True = attend).

# %%
valid = torch.tensor([7, 4])
mask = (torch.arange(LK)[None, :] < valid[:, None])[:, None, None, :]  # (B, 1, 1, Lk)
context, weights = ScaledDotProductAttention(DH)(q, k, v, mask)
compare("masked context vs F.scaled_dot_product_attention", context,
        F.scaled_dot_product_attention(q, k, v, attn_mask=mask), tol=1e-5)
print("largest weight on a padded key:", float(weights[1, :, :, 4:].abs().max()))

fig, axes = plt.subplots(1, 2, figsize=(7, 3))
for ax, b in zip(axes, range(B)):
    ax.imshow(weights[b, 0].detach(), cmap="viridis", vmin=0)
    ax.set(title=f"sequence {b}: {int(valid[b])} valid keys", xlabel="key", ylabel="query")
plt.tight_layout()
plt.show()

# %% [markdown]
# ### Dropout
# Dropout acts on the weights after the softmax, only in training mode; surviving weights are
# scaled by $1/(1-p)$ so their expectation is unchanged. In eval mode the module must be
# deterministic.

# %%
sdpa = ScaledDotProductAttention(DH, dropout=0.5)
_, w_train = sdpa.train()(q, k, v)
_, w_eval1 = sdpa.eval()(q, k, v)
_, w_eval2 = sdpa(q, k, v)
print(f"train mode: {float((w_train == 0).float().mean()):.0%} of the weights dropped")
compare("eval mode is deterministic", w_eval1, w_eval2, tol=1e-12)

# %% nbgrader={"grade": true, "grade_id": "task_1_1", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 1.1: the hidden tests run here when your work is graded.
### BEGIN HIDDEN TESTS
from vitgrade.autograde.nbcell import grade_task  # noqa: E402

grade_task("1.1")
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Task 1.2: `MultiHeadAttention`
#
# $n_H$ heads attend in parallel, each on its own $d_h = D/n_H$ slice of a projected token. Implement
# in `attention.py`:
# * `__init__`: check that `num_heads` divides `dim`; four `nn.Linear(dim, dim)` named
#   `w_q`, `w_k`, `w_v`, `w_o`; a `ScaledDotProductAttention` named `attention`;
# * `split_heads`: (B, L, D) → (B, L, nH, Dh) → (B, nH, L, Dh), head $h$ owning features
#   $h d_h, \dots, (h+1) d_h - 1$;
# * `merge_heads`: the inverse;
# * `forward(query, key=None, value=None, mask=None)`: project, split, attend, merge, project.
#   `key` defaults to `query` and `value` to `key`, so `mha(x)` is self-attention.
#
# The check copies the weights of `torch.nn.MultiheadAttention` into your module; the outputs and
# the per-head weights (`average_attn_weights=False` on PyTorch's side) must agree.
#
# *At SMOKE scale on the 2-core machine: about 4 s (measured 2026-12-04, under load).*

# %%
DIM, NUM_HEADS = 64, 4


def copy_from_torch(mine: MultiHeadAttention, ref: nn.MultiheadAttention) -> None:
    """nn.MultiheadAttention packs W^Q, W^K, W^V into one (3D, D) matrix; unpack it."""
    wq, wk, wv = ref.in_proj_weight.detach().chunk(3)
    bq, bk, bv = ref.in_proj_bias.detach().chunk(3)
    with torch.no_grad():
        for layer, w, b in [(mine.w_q, wq, bq), (mine.w_k, wk, bk), (mine.w_v, wv, bv),
                            (mine.w_o, ref.out_proj.weight, ref.out_proj.bias)]:
            layer.weight.copy_(w)
            layer.bias.copy_(b)


mha = MultiHeadAttention(DIM, NUM_HEADS).eval()
ref = nn.MultiheadAttention(DIM, NUM_HEADS, batch_first=True).eval()
copy_from_torch(mha, ref)
x = torch.randn(2, 10, DIM)
out, weights = mha(x)
ref_out, ref_weights = ref(x, x, x, need_weights=True, average_attn_weights=False)
print("output", tuple(out.shape), "weights", tuple(weights.shape))
compare("self-attention output vs nn.MultiheadAttention", out, ref_out, tol=1e-5)
compare("per-head weights vs nn.MultiheadAttention", weights, ref_weights, tol=1e-5)

memory = torch.randn(2, 6, DIM)  # cross-attention: 10 queries read 6 other tokens
out, _ = mha(x, memory)
compare("cross-attention output", out, ref(x, memory, memory)[0], tol=1e-5)

# %% [markdown]
# Self-attention has no idea where a token sits: permute the input tokens and the output tokens
# are permuted the same way (it is *permutation equivariant*), whatever the weights. Keep this in
# mind for Task 1.3.

# %%
any_mha = MultiHeadAttention(DIM, NUM_HEADS).eval()  # fresh random weights: any will do
perm = torch.randperm(10)
compare("mha(x[:, perm]) == mha(x)[:, perm]", any_mha(x[:, perm])[0], any_mha(x)[0][:, perm], tol=1e-5)

# %% [markdown]
# Do more heads cost more? Each head works on a $d_h = D/n_H$ slice, so $n_H$ heads compute
# $n_H$ score matrices of cost $L^2 d_h$ each: $L^2 D$ in total, whatever $n_H$ is, and the four
# projections do not depend on $n_H$ at all. PyTorch's FLOP counter agrees (2 FLOPs per
# multiply-add):

# %%
for heads in (1, 4, 16):
    with FlopCounterMode(display=False) as counter:
        MultiHeadAttention(DIM, heads)(x)
    print(f"{heads:>2} heads of width {DIM // heads:>2}: {counter.get_total_flops():,} FLOPs for x of shape {tuple(x.shape)}")

# %% nbgrader={"grade": true, "grade_id": "task_1_2", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 1.2: the hidden tests run here when your work is graded.
### BEGIN HIDDEN TESTS
grade_task("1.2")
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Task 1.3: don't trust it until it learns something
#
# The reverse-sequence task: the input is 10 random 64-dimensional vectors, the target the same
# vectors in reverse order. One attention layer can solve it exactly: the query at position $i$
# must put all its weight on key $L-1-i$ and copy that value. The success criterion: MSE below
# 0.01 after 500 Adam steps, with the attention weights of every head forming an anti-diagonal
# (each head carries only $d_h = 16$ of the 64 features of the token it copies, so every head
# has to read key $L-1-i$).
#
# First, the data: write `make_reverse_batch`.
#
# *At SMOKE scale on the 2-core machine: about 14 s (measured 2026-12-04, under load).*

# %% nbgrader={"grade": false, "grade_id": "make_reverse_batch", "locked": false, "schema_version": 3, "solution": true}
def make_reverse_batch(batch: int = 32, length: int = 10, dim: int = 64
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """A fresh batch of the reverse task.

    Returns:
        x: (batch, length, dim) standard-normal inputs
        y: (batch, length, dim) the same sequences in reverse order (y[:, i] = x[:, L-1-i])
    """
    ### BEGIN SOLUTION [Week 1 · Task 1.3]
    x = torch.randn(batch, length, dim)
    return x, x.flip(1)  # flip the sequence axis, not the feature axis
    ### END SOLUTION


# %%
x, y = make_reverse_batch(2, 10, 64)
print("x", tuple(x.shape), "y", tuple(y.shape))
compare("y[:, 0] is the last input token", y[:, 0], x[:, -1], tol=1e-12)

# %% [markdown]
# ### Positions go into the queries and keys only
#
# Because self-attention is permutation equivariant, `mha(x)` cannot know which token is first:
# a learned position table `pos` (one vector per position, std 1) must be added somewhere. Where
# matters. The queries and keys decide *where to look*: that is the job that needs positions. The
# values are *what gets copied*: a position added there is copied into the output too, and no
# single linear map can remove it for every position at once.
#
# Write `attend_with_positions`: self-attention over `x` with `pos` added to the query and key
# inputs, and the raw tokens as values.

# %% nbgrader={"grade": false, "grade_id": "attend_with_positions", "locked": false, "schema_version": 3, "solution": true}
def attend_with_positions(mha: MultiHeadAttention, x: torch.Tensor, pos: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """mha's (output, weights) for tokens x (B, L, D) and a position table pos (L, D)."""
    ### BEGIN SOLUTION [Week 1 · Task 1.3]
    qk = x + pos  # (B, L, D): the same table for every sequence of the batch
    return mha(qk, qk, x)
    ### END SOLUTION


# %% [markdown]
# Three runs of the same model and optimiser (dim 64, 4 heads, Adam 1e-3, MSE, a fresh batch
# every step), differing only in the positions:
# * `none`: no positions at all;
# * `qkv`: the positions added to the whole input, so to the values too;
# * `qk`: your `attend_with_positions`.

# %%
STEPS = SCALE.pick(smoke=500, full=2000)  # the criterion is at 500; FULL shows where the curves go
LENGTH = 10


def run_variant(mha: MultiHeadAttention, x: torch.Tensor, pos: torch.Tensor, variant: str):
    if variant == "none":
        return mha(x)
    if variant == "qkv":
        return mha(x + pos)
    return attend_with_positions(mha, x, pos)


def train_reverser(variant: str, steps: int = STEPS, seed: int = 0):
    """Train one MultiHeadAttention layer on the reverse task; return it and its loss curve."""
    torch.manual_seed(seed)
    mha = MultiHeadAttention(DIM, NUM_HEADS, dropout=0.0)
    pos = nn.Parameter(torch.randn(LENGTH, DIM))  # learned, std 1 at the start
    optimizer = torch.optim.Adam([*mha.parameters(), pos], lr=1e-3)
    losses = []
    for _ in tqdm(range(steps), desc=f"positions: {variant}", mininterval=2):
        x, y = make_reverse_batch(32, LENGTH, DIM)
        out, _ = run_variant(mha, x, pos, variant)
        loss = F.mse_loss(out, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return mha.eval(), pos, losses


RUNS = {}  # variant -> (model, pos, losses)


def trained(variant: str):
    """The trained (model, pos, losses) of a variant, trained the first time it is asked for.

    Later cells ask again instead of reusing a variable, so when a task is unfinished each of them
    fails with that task's own message, never with a NameError left over from this cell."""
    if variant not in RUNS:
        RUNS[variant] = train_reverser(variant)
    return RUNS[variant]


x_eval = torch.randn(256, LENGTH, DIM, generator=torch.Generator().manual_seed(1))  # never trained on
y_eval = x_eval.flip(1)

# %%
eval_loss = {}
for variant in ("none", "qkv", "qk"):
    model, pos, _ = trained(variant)
    with torch.no_grad():
        eval_loss[variant] = F.mse_loss(run_variant(model, x_eval, pos, variant)[0], y_eval).item()
    print(f"positions {variant:>4}: eval MSE {eval_loss[variant]:.4f} after {STEPS} steps")

fig, ax = plt.subplots(figsize=(7, 4))
for variant in eval_loss:
    ax.semilogy(trained(variant)[2], label=f"{variant} (eval {eval_loss[variant]:.3f})")
ax.axhline(0.01, color="k", ls="--", lw=0.8, label="success: 0.01")
ax.set(xlabel="step", ylabel="training MSE", title="Reverse task: where the positions go")
ax.legend()
plt.show()

# %% [markdown]
# Expected with a correct implementation (the reference solution, seed 0, eval MSE):
#
# | run | `none` | `qkv` | `qk` |
# |---|---|---|---|
# | SMOKE: 500 steps (the curriculum's criterion) | 0.899 | 0.124 | 0.0014 |
# | FULL: 2000 steps | 0.896 | 0.106 | 0.0001 |
#
# `none` stays near 0.9 (reflection 3 asks why), `qkv` floors above 0.1 (the seed's "stalls above
# 0.1" symptom, with nothing wrong in the attention code), and `qk` ends below 0.01. If `qk`
# stalls too, go back to your module.

# %% [markdown]
# ### Look inside: every head, one validation sequence

# %%
model, pos, _ = trained("qk")
with torch.no_grad():
    _, weights = attend_with_positions(model, x_eval[:1], pos)  # (1, nH, L, L)
anti = torch.eye(LENGTH).flip(1)  # 1 on the anti-diagonal j = L - 1 - i
fig, axes = plt.subplots(1, NUM_HEADS, figsize=(3 * NUM_HEADS, 3))
for h, ax in enumerate(axes):
    mass = float((weights[0, h] * anti).sum() / LENGTH)
    ax.imshow(weights[0, h], cmap="viridis", vmin=0, vmax=1)
    ax.set(title=f"head {h}: {mass:.0%} on anti-diagonal", xlabel="key", ylabel="query")
plt.tight_layout()
plt.show()
print("argmax key per query, head 0:", weights[0, 0].argmax(-1).tolist())

# %% nbgrader={"grade": true, "grade_id": "task_1_3", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 1.3: the hidden test trains your MultiHeadAttention on the reverse task
# (positions in the queries and keys only) and checks the loss and the anti-diagonal.
### BEGIN HIDDEN TESTS
grade_task("1.3")
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Reflect
#
# Write a few sentences for each; they are not graded, but next week assumes you can answer them.
#
# 1. Run `ScaledDotProductAttention` without the $1/\sqrt{d_h}$ on random $d_h = 512$ inputs and
#    look at the largest weight of each row. What does the softmax's gradient look like there?
# 2. Masked scores are set to `-1e9`, not `-inf`. What would `-inf` do to a row whose keys are
#    all padding? Which is the better behaviour for a padded batch?
# 3. Without positions nothing tells the layer which token is the mirror of token $i$: it is one
#    of the other $L-1$ tokens, each as likely. Show that the best a permutation-equivariant layer
#    can do is predict the mean of the *other* tokens, with expected MSE $1 - 1/(L-1) \approx 0.889$
#    for $L = 10$, and that predicting the mean of the whole sequence (what uniform attention
#    gives) costs $1 - 1/L = 0.9$. Which of the two is your `none` run closer to, and what would a
#    layer need to do to exclude token $i$ itself?
# 4. With positions in the values the loss floors near 0.12. Why can't the output projection
#    $W^O$ learn to subtract the copied position? (Hint: what does $W^O$ know about which key
#    was attended to?)
# 5. All four heads learn the same anti-diagonal. Why must they here, when each carries only 16 of
#    the 64 features? Which task would let the heads specialise, and what would you expect with
#    1 head, or 16?
