# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Week 5 · CLIP and DINOv2: contrastive and self-supervised features
#
# Weeks 1 to 4 trained every model on labels. This week the supervision comes from elsewhere. CLIP
# (Radford et al. 2021) learns from image-caption pairs: a contrastive loss pulls each image towards
# its own caption and away from the others in the batch, and the result is a classifier you write in
# words (zero-shot). DINOv2 (Oquab et al. 2024) learns from images alone, by self-distillation, and
# its frozen features are good enough that a nearest-neighbour vote classifies well. You will measure
# features the way both papers do: zero-shot, k-nearest neighbours and a linear probe.
#
# You write five small modules in `src/vitcourse/` (in an nbgrader assignment folder:
# `vitcourse/` next to this notebook): `contrastive.py` (Task 5.1), `features.py` (5.2),
# `zeroshot.py` (5.3), `knn.py` (5.4) and `probe.py` (5.5). None of them needs pretrained weights.
#
# **Where the numbers come from.** Pretrained CLIP and DINOv2 weights are hundreds of megabytes and
# this notebook must also run offline. So the first half trains two *tiny* models here, in a minute
# or so on a CPU (the cell prints how long): a small supervised ViT (your Week 2 `VisionTransformer`) and a tiny CLIP, both on
# generated coloured shapes, the CLIP one on captions and with *your* loss. Every accuracy in sections
# 2 to 7 is about these tiny models on this toy data. Section 8 repeats the comparison with the real
# pretrained CLIP, DINOv2 and a supervised ViT when their weights are on this machine; without them it
# says so and skips: numbers from randomly initialised stand-ins would mean nothing.
#
# Each check prints a relative error next to the tolerance it expects. Those checks and the public
# tests (`vitgrade check 5`) are for feedback only; the hidden tests decide the grade.
#
# *At SMOKE scale on the 2-core machine, imports and data take about 8 s; every section
# states its own time (all measured 2026-12-04, under load).*

# %%
# %load_ext autoreload
# %autoreload 2
import math
import os
import random
import time
from contextlib import contextmanager
from functools import cache

import matplotlib.pyplot as plt
import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from sklearn.manifold import TSNE
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from vitcourse.checks import compare
from vitcourse.contrastive import clip_logits, clip_loss
from vitcourse.data import COLOURS, SHAPE_CLASSES, load_cifar10, make_shapes
from vitcourse.features import extract_features
from vitcourse.knn import knn_predict
from vitcourse.pretrained import WeightsUnavailable, load_open_clip, load_timm, load_transformers
from vitcourse.probe import linear_probe
from vitcourse.scale import SCALE, Scale, scale_banner
from vitcourse.vit import Block, VisionTransformer
from vitcourse.zeroshot import zero_shot_predict, zero_shot_weights

print(scale_banner())
torch.manual_seed(0)
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
NOTEBOOK_START = time.monotonic()

# %% [markdown]
# ## 1. Task 5.1: the contrastive loss
#
# A batch holds B pairs (image $i$, caption $i$). Two encoders map images and texts into one
# E-dimensional space; after L2 normalisation, the B x B matrix of cosine similarities has the
# matching pairs on its diagonal and B(B-1) mismatched pairs off it. CLIP's loss (InfoNCE, van den
# Oord et al. 2018) reads each row as a B-way classification, "which caption is mine?", and each
# column as "which image is mine?":
#
# $$\ell = \tfrac12\Big[\mathrm{CE}\big(\tfrac{I T^\top}{\tau}, [0..B{-}1]\big)
#   + \mathrm{CE}\big(\tfrac{T I^\top}{\tau}, [0..B{-}1]\big)\Big],
#   \qquad I, T \text{ with unit rows.}$$
#
# The temperature $\tau$ matters: cosines lie in [-1, 1], so with $\tau = 1$ even a perfect pair
# can beat a wrong one by a logit of at most 2. CLIP learns $\tau$ (stored as $\log(1/\tau)$,
# starting at $\tau = 0.07$, the logit scale clipped at 100).
#
# Implement `clip_logits` and `clip_loss` in `contrastive.py`. Normalise inside (open_clip's
# `ClipLoss` expects unit vectors from its towers; yours may get any scale), divide by the
# temperature, average the two directions, and accept a temperature that is a tensor with a
# gradient: section 2 learns it.
#
# *At SMOKE scale on the 2-core machine: under a second (measured 2026-12-04, under load).*

# %%
image, text = 3 * torch.randn(8, 16), 0.5 * torch.randn(8, 16)  # any scale: clip_loss normalises
reference = open_clip.ClipLoss()  # expects unit features and logit_scale = 1 / temperature
for tau in (1.0, 0.1, 0.07):
    compare(f"clip_loss vs open_clip ClipLoss, temperature {tau}", clip_loss(image, text, tau),
            reference(F.normalize(image, dim=-1), F.normalize(text, dim=-1), logit_scale=1 / tau))
compare("symmetric: clip_loss(images, texts) = clip_loss(texts, images)", clip_loss(image, text, 0.1),
        clip_loss(text, image, 0.1))
compare("8 identical pairs: nothing to tell apart, the loss is log 8", clip_loss(torch.ones(8, 16), torch.ones(8, 16), 0.07),
        torch.tensor(math.log(8)))
print("clip_logits:", tuple(clip_logits(image, text[:5], 0.1).shape), "= (images, texts)")

# %% [markdown]
# How low can the loss go? Below, B = 64 captions are noisy copies of their images
# (text = image + noise), from perfectly aligned (noise 0) to unrelated; one curve per temperature.

# %%
gen = torch.Generator().manual_seed(0)
pairs_image = F.normalize(torch.randn(64, 32, generator=gen), dim=-1)
noise = torch.randn(64, 32, generator=gen) / math.sqrt(32)  # about unit norm per row
levels = torch.linspace(0, 3, 16)
fig, ax = plt.subplots(figsize=(7, 4))
for tau in (1.0, 0.3, 0.07, 0.01):
    ax.plot(levels, [float(clip_loss(pairs_image, pairs_image + s * noise, tau)) for s in levels],
            "o-", ms=3, label=f"temperature {tau}")
ax.axhline(math.log(64), color="k", ls=":", label="log B: chance")
ax.set(xlabel="caption noise (0 = caption equals its image)", ylabel="clip_loss", yscale="symlog",
       title="B = 64 pairs: the temperature sets how sure the loss can be")
ax.legend()
plt.show()
print(f"perfect pairs at temperature 1: loss {float(clip_loss(pairs_image, pairs_image, 1.0)):.2f} "
      f"(log 64 = {math.log(64):.2f}); at 0.01: {float(clip_loss(pairs_image, pairs_image, 0.01)):.2g}")
# The floor at temperature 1: the right caption's logit is at most 1 (a cosine), and 64 unit vectors can
# be no further apart than a regular simplex (cosine -1/63 between any two).
print(f"the lowest loss any 64 unit embeddings can reach at temperature 1: "
      f"log(1 + 63 exp(-1 - 1/63)) = {math.log(1 + 63 * math.exp(-1 - 1 / 63)):.2f}; with the 63 wrong captions "
      f"orthogonal (cosine 0, as random vectors in 32 dimensions nearly are): log(63 + e) - 1 = "
      f"{math.log(63 + math.e) - 1:.2f}")

# %% [markdown]
# At temperature 1 even perfectly matched pairs leave the loss one nat below chance (3.19 against
# log 64 = 4.16), and no embedding can do much better: the logits are cosines, so the right caption
# can beat a wrong one by at most 2 and, in practice, by about 1 (64 vectors cannot all point away
# from each other). The softmax over 64 such logits gives the right caption only e / (e + 63) = 4 %
# of the probability, and the best any arrangement can reach is 3.17 nats. So at temperature 1 the
# loss stops rewarding alignment almost as soon as it starts: it cannot tell a perfect model from a
# good one. A small temperature stretches the logits (cosine / T) and lets the loss reward
# alignment; too small, and a little noise makes it explode. That is why CLIP learns it.

# %% nbgrader={"grade": true, "grade_id": "task_5_1", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 5.1: the hidden tests run here when your work is graded.
### BEGIN HIDDEN TESTS
from vitgrade.autograde.nbcell import grade_task  # noqa: E402

grade_task("5.1")
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Two tiny models, trained here
#
# The data: `make_shapes` draws eight shapes in eight colours on dark backgrounds, and knows each
# image's shape and colour, so it can write captions ("a drawing of a red circle"). Two models with
# the *same* image tower, your Week 2 ViT (32 x 32 images, 8 x 8 patches, 2 blocks of width 64):
#
# * **supervised**: trained with cross-entropy on the 8 shape labels, as in Weeks 2-3;
# * **tiny CLIP**: trained with your `clip_loss` on captions, never on labels. Its text tower is
#   a word embedding, one Week 2 `Block` and a mean over the words. Each caption is drawn at
#   random from a handful of templates, some naming the colour, some not.
#
# The captions contain the shape's name, so the tiny CLIP is not label-free the way DINOv2 is; it
# is *language*-supervised. What it learns from the captions is what this section is about.
#
# *At SMOKE scale on the 2-core machine: about 65 s (measured 2026-12-04, under load).*

# %%
N_TRAIN, N_TEST = SCALE.pick(smoke=2000, full=10_000), SCALE.pick(smoke=500, full=2000)
train_shapes, test_shapes = make_shapes(N_TRAIN, 32, seed=0), make_shapes(N_TEST, 32, seed=1)
mean = train_shapes.images.mean(dim=(0, 2, 3), keepdim=True)
std = train_shapes.images.std(dim=(0, 2, 3), keepdim=True)
x_train, x_test = (train_shapes.images - mean) / std, (test_shapes.images - mean) / std
y_train, y_test = train_shapes.labels, test_shapes.labels  # shape: the label the supervised model sees
c_train, c_test = train_shapes.colours, test_shapes.colours  # colour: a label nobody trains on
COLOUR_NAMES = tuple(COLOURS)
print(f"{N_TRAIN} training and {N_TEST} test images, {len(SHAPE_CLASSES)} shapes x {len(COLOUR_NAMES)} colours")

CAPTION_TEMPLATES = ("a drawing of a {colour} {shape}", "a {colour} {shape}", "a {shape} in {colour}",
                     "an image of a {colour} {shape}", "a {colour} drawing", "a drawing of a {shape}",
                     "a {shape}", "a picture of a {shape}")
fig, axes = plt.subplots(1, 8, figsize=(15, 2.3))
for i, ax in enumerate(axes):
    ax.imshow(test_shapes.images[i].permute(1, 2, 0))
    ax.set_title(test_shapes.captions(CAPTION_TEMPLATES[i])[i], fontsize=7)
    ax.axis("off")
plt.show()

# %% [markdown]
# The text side: a vocabulary of the words in the caption templates (an unknown word becomes
# `<unk>`, whose embedding is never trained), captions padded to 8 tokens.

# %%
WORDS = sorted({w for t in CAPTION_TEMPLATES for w in t.split() if "{" not in w} | set(SHAPE_CLASSES)
               | set(COLOUR_NAMES))
VOCAB = {w: i + 2 for i, w in enumerate(WORDS)}  # 0 = padding, 1 = <unk>
CONTEXT = 8


def tokenize(texts: list[str]) -> torch.Tensor:
    """Captions -> (n, 8) int64 word ids, 0-padded; unknown words -> 1."""
    ids = torch.zeros(len(texts), CONTEXT, dtype=torch.long)
    for i, caption in enumerate(texts):
        words = [VOCAB.get(w, 1) for w in caption.lower().replace(".", " ").replace(",", " ").split()]
        ids[i, :len(words[:CONTEXT])] = torch.tensor(words[:CONTEXT], dtype=torch.long)
    return ids


class TextEncoder(nn.Module):
    """Word embeddings + learned positions -> one pre-norm Block -> LayerNorm -> mean over the words -> E."""

    def __init__(self, vocab_size: int, width: int = 64, embed_dim: int = 32) -> None:
        super().__init__()
        self.token_embed = nn.Embedding(vocab_size, width)
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, CONTEXT, width))
        self.block = Block(width, num_heads=4, mlp_ratio=2.0)
        self.norm = nn.LayerNorm(width)
        self.proj = nn.Linear(width, embed_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(n, 8) ids -> (n, E)."""
        words = (tokens > 0).float()[..., None]  # (n, 8, 1): 1 for a word, 0 for padding
        x = self.norm(self.block(self.token_embed(tokens) + self.pos_embed))  # (n, 8, width)
        return self.proj((x * words).sum(dim=1) / words.sum(dim=1))  # (n, E): mean over the words


VIT = dict(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4, mlp_ratio=2.0)


class TinyCLIP(nn.Module):
    """An image tower (Week 2 ViT whose head projects the CLS token to E), a text tower and CLIP's
    learnable temperature, stored as log(1 / temperature) like open_clip's ``logit_scale``."""

    def __init__(self, embed_dim: int = 32) -> None:
        super().__init__()
        self.visual = VisionTransformer(**VIT, num_classes=embed_dim)
        self.text = TextEncoder(len(VOCAB) + 2, embed_dim=embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.visual(images)  # (B, E)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.text(tokens)  # (n, E)

# %%
STEPS = SCALE.pick(smoke=600, full=3000)
BATCH, LR = 128, 3e-3
caption_rng = random.Random(0)
shape_names, colour_names = train_shapes.shape_names, train_shapes.colour_names


def captions(index: torch.Tensor) -> list[str]:
    """A fresh random caption for each image of the batch."""
    return [caption_rng.choice(CAPTION_TEMPLATES).format(colour=colour_names[i], shape=shape_names[i])
            for i in index.tolist()]


def clip_step(model: TinyCLIP, index: torch.Tensor) -> torch.Tensor:
    image_features = model.encode_image(x_train[index].to(DEVICE))
    text_features = model.encode_text(tokenize(captions(index)).to(DEVICE))
    return clip_loss(image_features, text_features, 1 / model.logit_scale.exp())  # your loss, a learned temperature


def supervised_step(model: VisionTransformer, index: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(x_train[index].to(DEVICE)), y_train[index].to(DEVICE))


def train(model: nn.Module, step, desc: str) -> dict[str, list[float]]:
    """AdamW with a one-cycle schedule on random batches; returns the loss (and temperature) curves."""
    torch.manual_seed(0)
    model.to(DEVICE).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=LR, total_steps=STEPS, pct_start=0.1)
    history = {"loss": [], "temperature": []}
    for _ in tqdm(range(STEPS), desc=desc, mininterval=2):
        loss = step(model, torch.randint(0, N_TRAIN, (BATCH,)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        history["loss"].append(loss.item())
        if hasattr(model, "logit_scale"):
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))  # CLIP: the logit scale never exceeds 100
            history["temperature"].append(float(1 / model.logit_scale.detach().exp()))
    return history


TINY_MODELS = ("supervised ViT", "tiny CLIP")


@cache
def trained(name: str) -> tuple[nn.Module, dict[str, list[float]]]:
    """One of TINY_MODELS in eval mode and its training curves, trained the first time a cell asks
    for it. The cells below ask again instead of reusing a variable, so an unfinished task (yours,
    or Week 2's ViT) stops each of them with its own message, never with a NameError left over
    from this cell."""
    torch.manual_seed(0)
    if name == "supervised ViT":
        model, step = VisionTransformer(**VIT, num_classes=len(SHAPE_CLASSES)), supervised_step
    else:
        model, step = TinyCLIP(), clip_step
    history = train(model, step, name)
    return model.eval(), history


@cache
def head_accuracy() -> float:
    """The supervised ViT's shape accuracy on the test set, with its own classification head."""
    with torch.no_grad():
        logits = trained("supervised ViT")[0](x_test.to(DEVICE))  # (N_TEST, 8)
    return float((logits.argmax(1).cpu() == y_test).float().mean())


start = time.monotonic()
supervised_history, clip_history = trained("supervised ViT")[1], trained("tiny CLIP")[1]
print(f"both trained in {time.monotonic() - start:.0f} s on {DEVICE}, {STEPS} steps of {BATCH}")
print(f"supervised ViT, its own head: shape accuracy {head_accuracy():.1%} on {N_TEST} test images")
print(f"tiny CLIP: final loss {np.mean(clip_history['loss'][-50:]):.2f} (log {BATCH} = {math.log(BATCH):.2f}), "
      f"learned temperature {clip_history['temperature'][-1]:.3f}")

fig, axes = plt.subplots(1, 3, figsize=(15, 3.5))
smooth = np.ones(25) / 25
axes[0].plot(np.convolve(supervised_history["loss"], smooth, "valid"))
axes[0].set(title="supervised ViT", xlabel="step", ylabel="cross-entropy (25-step mean)")
axes[1].plot(np.convolve(clip_history["loss"], smooth, "valid"))
axes[1].axhline(math.log(BATCH), color="k", ls=":", label=f"log {BATCH}: chance")
axes[1].set(title="tiny CLIP", xlabel="step", ylabel="clip_loss (25-step mean)")
axes[1].legend()
axes[2].plot(clip_history["temperature"])
axes[2].set(title="tiny CLIP: the learned temperature", xlabel="step", ylabel="temperature")
plt.tight_layout()
plt.show()

# %% [markdown]
# The tiny CLIP's loss stays far above 0, and its learned temperature hardly moves from where it
# started (0.07; the last number printed above). Both have one cause built into this data: 8 shapes
# x 8 colours make only 64 distinct "colour + shape" captions, so a batch of 128 contains the same
# caption several times, and the loss calls every copy but one a *wrong* match. No embedding can
# tell identical captions apart, so a sharper softmax (a smaller temperature) would only be punished
# harder for them. CLIP's batches of 32,768 web captions rarely repeat.
#
# What it learned about shapes: one test image per shape against captions that name only the shape,
# so colour cannot help. Row $i$ is image $i$'s softmax over the eight captions; mass off the
# diagonal is a shape the tiny CLIP mistakes for another.

# %%
pick = torch.stack([(y_test == k).nonzero()[0, 0] for k in range(len(SHAPE_CLASSES))])  # one test image per shape
shown = [f"a drawing of a {shape}" for shape in SHAPE_CLASSES]  # caption k names shape k, no colour
tiny_clip = trained("tiny CLIP")[0]
with torch.no_grad():
    logits = clip_logits(tiny_clip.encode_image(x_test[pick].to(DEVICE)),
                         tiny_clip.encode_text(tokenize(shown).to(DEVICE)), 1 / tiny_clip.logit_scale.exp())
fig, axes = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [1.2, 1]})
axes[0].imshow(torch.cat(list(test_shapes.images[pick]), dim=2).permute(1, 2, 0))
axes[0].set_title("test images 0..7")
axes[0].axis("off")
im = axes[1].imshow(logits.softmax(dim=1).cpu(), cmap="viridis", vmin=0, vmax=1)
axes[1].set_xticks(range(8), shown, rotation=40, ha="right", fontsize=8)
axes[1].set(ylabel="image", title="softmax over the captions")
fig.colorbar(im, ax=axes[1])
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 3. Task 5.2: frozen features
#
# Everything from here on uses the models *frozen*: one pass over a dataset, one feature vector per
# image, computed once. Implement `extract_features(model, loader, embed=None)` in `features.py`:
# `model.eval()` (dropout off, batch norm on its running statistics), every batch under
# `torch.no_grad()`, a tqdm progress bar, and the labels taken from the same batches as the images,
# so that row $n$ of both belongs to one image even when the loader shuffles. `embed` says what to
# call: here the CLS token of each ViT after its final LayerNorm, 64 numbers per image. For both
# models that is the same place in the same architecture; only the training signal differs.
#
# First a model whose features you can write down, so the check needs nothing trained: it flattens
# each image and applies dropout, which eval mode must switch off. The loader shuffles, so row $n$ of
# the features must be the image whose label sits in row $n$ of the labels.
#
# *At SMOKE scale on the 2-core machine: under a second (measured 2026-12-04, under load).*

# %%
def loader(x: torch.Tensor, y: torch.Tensor, shuffle: bool = False) -> DataLoader:
    return DataLoader(TensorDataset(x, y), batch_size=256, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(0))


toy_images = torch.arange(6 * 3 * 2 * 2, dtype=torch.float32).reshape(6, 3, 2, 2)  # image n holds 12n .. 12n + 11
toy_features, toy_labels = extract_features(nn.Sequential(nn.Flatten(), nn.Dropout(0.5)).train(),
                                            loader(toy_images, torch.arange(6), shuffle=True))
compare("flatten + dropout, shuffled loader: row n is image labels[n], flattened, no dropout",
        toy_features, toy_images.flatten(1)[toy_labels], tol=1e-12)
print(f"labels in the loader's shuffled order: {toy_labels.tolist()}")

# %% [markdown]
# Now the two tiny models: their CLS features, extracted once, the first time a cell asks for them.

# %%
def cls_token(model: VisionTransformer):
    return lambda images: model.forward_features(images)[:, 0]  # (b, D): the CLS token after the final norm


@cache
def frozen_features(name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train features (N_TRAIN, 64), train labels, test features (N_TEST, 64), test labels) of one of
    TINY_MODELS (of the tiny CLIP: its image tower), extracted the first time a cell asks for them."""
    model = trained(name)[0]
    tower = model.visual if name == "tiny CLIP" else model  # a VisionTransformer either way
    return (*extract_features(tower, loader(x_train, y_train), embed=cls_token(tower)),
            *extract_features(tower, loader(x_test, y_test), embed=cls_token(tower)))


train_f, train_y, test_f, test_y = frozen_features("supervised ViT")
supervised = trained("supervised ViT")[0]
with torch.no_grad():
    direct = supervised.forward_features(x_test.to(DEVICE))[:, 0].cpu()
compare("extract_features vs one forward pass over the test set", test_f, direct, tol=1e-5)
shuffled_f, shuffled_y = extract_features(supervised, loader(x_test, y_test, shuffle=True), embed=cls_token(supervised))
source = torch.cdist(shuffled_f, test_f).argmin(dim=1)  # where each shuffled row came from
print(f"shuffled loader: labels still belong to their features: {bool((shuffled_y == test_y[source]).all())}; "
      f"features require grad: {shuffled_f.requires_grad}; shapes {tuple(test_f.shape)}, {tuple(test_y.shape)}")

# %% nbgrader={"grade": true, "grade_id": "task_5_2", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 5.2.
### BEGIN HIDDEN TESTS
grade_task("5.2")
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Task 5.3: zero-shot classification
#
# The tiny CLIP has never seen a shape label. To classify, write the classes as text: put each class
# name into prompt templates, embed every prompt, and keep one unit vector per class,
#
# $$w_k = \mathrm{normalise}\Big(\tfrac{1}{P}\textstyle\sum_p \mathrm{normalise}\big(f_\text{text}(\text{template}_p(\text{class}_k))\big)\Big).$$
#
# An image goes to the class whose vector is most similar (cosine): `probs = softmax(100 * cos)`.
# Implement `zero_shot_weights(encode_text, classnames, templates)` and `zero_shot_predict` in
# `zeroshot.py`; the check compares your weights with open_clip's own `build_zero_shot_classifier`
# (which returns the transpose, (E, K)) on the tiny CLIP.
#
# *At SMOKE scale on the 2-core machine: under a second (measured 2026-12-04, under load).*

# %%
class OpenClipView:
    """What build_zero_shot_classifier asks of a model: encode_text(tokens, normalize)."""

    def __init__(self, model: TinyCLIP) -> None:
        self.model = model

    def encode_text(self, tokens: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        out = self.model.encode_text(tokens)
        return F.normalize(out, dim=-1) if normalize else out


def tiny_encode_text(texts: list[str]) -> torch.Tensor:
    return trained("tiny CLIP")[0].encode_text(tokenize(texts).to(DEVICE))


@cache
def clip_test_features() -> torch.Tensor:
    """The tiny CLIP's image embeddings of the test set (N_TEST, E), computed the first time a cell asks."""
    tiny_clip = trained("tiny CLIP")[0]
    return extract_features(tiny_clip, loader(x_test, y_test), embed=tiny_clip.encode_image)[0]


ZERO_SHOT_TEMPLATES = ("a drawing of a {}.", "a {}.", "a picture of a {}.", "{}", "a photo of a {}.",
                       "a blurry photo of a {}.")
weights = zero_shot_weights(tiny_encode_text, SHAPE_CLASSES, ZERO_SHOT_TEMPLATES)  # (K, E)
reference = open_clip.build_zero_shot_classifier(OpenClipView(trained("tiny CLIP")[0]), tokenize, SHAPE_CLASSES,
                                                 ZERO_SHOT_TEMPLATES, device=DEVICE)  # (E, K)
compare("zero_shot_weights vs open_clip build_zero_shot_classifier", weights, reference.T, tol=1e-5)
clip_image = clip_test_features()  # (N, E)
probs, preds = zero_shot_predict(clip_image, weights.cpu())
compare("zero_shot_predict: probabilities sum to 1 over the classes", probs.sum(dim=1), torch.ones(len(probs)))
print(f"zero-shot shape accuracy, all {len(ZERO_SHOT_TEMPLATES)} templates averaged: "
      f"{float((preds == y_test).float().mean()):.1%} (chance {1 / len(SHAPE_CLASSES):.1%})")

# %% [markdown]
# ### How much does the wording matter?
# One classifier per template, and the average of the six sensible ones (the "ensemble" CLIP
# recommends). The first four templates use only words from the tiny CLIP's captions; "photo" and
# "blurry" it never saw (they become `<unk>`). The last three are deliberately misleading: one
# names a colour, one a colour and the word "drawing", one a second shape.

# %%
MISLEADING_TEMPLATES = ("a red {}.", "a drawing of a green {}.", "a {}, not a circle.")


def template_table(encode_text, classnames, templates, image_features, labels, extra=()) -> dict[str, float]:
    """Zero-shot accuracy for each template alone (``extra`` ones too), and for ``templates`` averaged."""
    rows = {}
    for template in [*templates, *extra, None]:
        chosen = templates if template is None else (template,)
        _, guess = zero_shot_predict(image_features, zero_shot_weights(encode_text, classnames, chosen).cpu())
        rows[f"ensemble of the first {len(templates)}" if template is None else repr(template)] = float(
            (guess == labels).float().mean())
    return rows


def show_table(rows: dict[str, float], title: str) -> None:
    print(f"{title}\n" + "\n".join(f"  {name:<42} {accuracy:6.1%}" for name, accuracy in rows.items()))


@cache
def zero_shot_table(task: str) -> dict[str, float]:
    """The tiny CLIP's zero-shot accuracies on the test set, computed the first time a cell asks:
    task "shape" (each template alone, the misleading ones too, and the ensemble) or "colour" (the
    classes written as colours)."""
    if task == "shape":
        return template_table(tiny_encode_text, SHAPE_CLASSES, ZERO_SHOT_TEMPLATES, clip_test_features(), y_test,
                              extra=MISLEADING_TEMPLATES)
    return template_table(tiny_encode_text, COLOUR_NAMES, ("a {} drawing", "a {} shape"), clip_test_features(),
                          c_test)


clip_image = clip_test_features()  # (N, E)
shape_table = zero_shot_table("shape")
show_table(shape_table, f"tiny CLIP, zero-shot shape accuracy on {N_TEST} test images (chance 12.5%):")
accuracies = list(shape_table.values())
sensible = accuracies[:len(ZERO_SHOT_TEMPLATES)]
print(f"spread over the {len(sensible)} sensible templates: {min(sensible):.1%} .. {max(sensible):.1%}; "
      f"misleading ones: {', '.join(f'{a:.1%}' for a in accuracies[len(sensible):-1])}")
for template in (ZERO_SHOT_TEMPLATES[0], MISLEADING_TEMPLATES[-1]):
    _, guess = zero_shot_predict(clip_image, zero_shot_weights(tiny_encode_text, SHAPE_CLASSES, (template,)).cpu())
    print(f"with {template!r} the classifier says 'circle' for {float((guess == 0).float().mean()):.1%} of the "
          f"test images ({float((y_test == 0).float().mean()):.1%} are circles)")

colour_table = zero_shot_table("colour")
show_table(colour_table, "the same image features, classes written as colours (chance 12.5%):")

fig, axes = plt.subplots(1, 2, figsize=(14, 4), gridspec_kw={"width_ratios": [1.6, 1]})
bar_colours = ["C0"] * len(ZERO_SHOT_TEMPLATES) + ["C3"] * len(MISLEADING_TEMPLATES) + ["C1"]
axes[0].barh(list(shape_table)[::-1], accuracies[::-1], color=bar_colours[::-1])
for y, accuracy in enumerate(accuracies[::-1]):
    axes[0].text(accuracy + 0.01, y, f"{accuracy:.1%}", va="center", fontsize=8)
axes[0].set(xlabel="zero-shot shape accuracy (red: misleading prompts)", title="one classifier per prompt template",
            xlim=(0, 1.1))
confusion = torch.zeros(8, 8)
confusion.index_put_((y_test, preds), torch.ones(len(y_test)), accumulate=True)
axes[1].imshow(confusion / confusion.sum(dim=1, keepdim=True), cmap="Blues", vmin=0, vmax=1)
axes[1].set_xticks(range(8), SHAPE_CLASSES, rotation=45)
axes[1].set_yticks(range(8), SHAPE_CLASSES)
axes[1].set(xlabel="predicted", ylabel="true", title="ensemble: confusion (rows sum to 1)")
plt.tight_layout()
plt.show()

# %% [markdown]
# The sensible templates land close together: this text tower was trained on several templates
# drawn at random, and every word a template adds is added to *all* eight class prompts alike, so
# the class word decides. Words with a meaning of their own (a colour, a second shape) cost more:
# they move all eight class vectors the same way and shrink the part the class word contributes.
# "not a circle" shows it plainly: every prompt now contains "circle", so the circle prompt no
# longer stands out, and the classifier names circles far less often than there are circles (the
# two lines under the table). A mean of word vectors has no notion of "not". A real CLIP has a far
# richer text tower and still needs prompt engineering (Radford et al. 2021, section 3.1.4);
# section 8 measures its spread on CIFAR-10 when the weights are here.
#
# The same image features answer a colour question as soon as the classes are written as colours:
# the classifier is text, and changing the text changes the task. Nobody trained a colour classifier.

# %% nbgrader={"grade": true, "grade_id": "task_5_3", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 5.3.
### BEGIN HIDDEN TESTS
grade_task("5.3")
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Task 5.4: k-nearest neighbours, DINO's way
#
# A feature space is good for a task when images of one class sit together. The k-NN classifier
# measures that with no training at all: compare a test feature with every training feature
# (cosine), keep the k most similar, and let them vote, each with weight $\exp(s/T)$
# (DINO: $T = 0.07$, $k = 20$). Implement `knn_predict` in `knn.py`, including `exclude_self` for
# leave-one-out use (a query that is in the bank must not vote for itself) and chunks of queries so
# that a 10,000 x 50,000 similarity matrix never has to exist at once.
#
# The checks compare it with the definition written as a loop, one query and one neighbour at a time:
# first on random features, which needs nothing trained, then on the tiny CLIP's.
#
# *At SMOKE scale on the 2-core machine: about 1 s (measured 2026-12-04, under load).*

# %%
def knn_by_hand(bank, labels, query, k, temperature, num_classes) -> torch.Tensor:
    """One query: sort the bank by cosine similarity, let the first k vote with exp(s / T)."""
    sims = [float(F.cosine_similarity(query, row, dim=0)) for row in bank]
    votes = torch.zeros(num_classes)
    for j in sorted(range(len(bank)), key=lambda j: -sims[j])[:k]:
        votes[labels[j]] += math.exp(sims[j] / temperature)
    return votes


toy = torch.Generator().manual_seed(0)  # its own generator: the global random state stays as it was
toy_bank, toy_queries = torch.randn(40, 6, generator=toy), torch.randn(4, 6, generator=toy)
toy_labels = torch.randint(0, 3, (40,), generator=toy)
for k in (5, 40):  # k = 40: the whole bank votes
    scores, _ = knn_predict(toy_bank, toy_labels, toy_queries, k=k, temperature=0.1, num_classes=3, chunk_size=3)
    compare(f"knn_predict scores vs the loop, 40 random features, 4 queries, k = {k}", scores,
            torch.stack([knn_by_hand(toy_bank, toy_labels, q, k, 0.1, 3) for q in toy_queries]), tol=1e-5)

# %%
def knn_accuracy(name: str, k: int, labels: str = "shape") -> float:
    bank, bank_y, queries, queries_y = frozen_features(name)
    if labels == "colour":
        bank_y, queries_y = c_train, c_test
    _, guess = knn_predict(bank, bank_y, queries, k=k)
    return float((guess == queries_y).float().mean())


train_f, train_y, test_f, test_y = frozen_features("tiny CLIP")
scores, _ = knn_predict(train_f, train_y, test_f[:5], k=20, temperature=0.07, chunk_size=2)
compare("knn_predict scores vs the loop, 5 queries, k = 20", scores,
        torch.stack([knn_by_hand(train_f, train_y, q, 20, 0.07, 8) for q in test_f[:5]]), tol=1e-5)
loo_scores, _ = knn_predict(train_f[:300], train_y[:300], train_f[:300], k=5, exclude_self=True, chunk_size=64)
compare("leave-one-out: query 200 (4th chunk) without its own vote", loo_scores[200],
        knn_by_hand(torch.cat([train_f[:200], train_f[201:300]]), torch.cat([train_y[:200], train_y[201:300]]),
                    train_f[200], 5, 0.07, 8), tol=1e-5)

print(f"\nk-NN accuracy on {N_TEST} test images, T = 0.07 (chance 12.5 %)")
print(f"{'features':<16} {'task':<7}" + "".join(f"{f'k={k}':>8}" for k in (1, 5, 20)))
for name in TINY_MODELS:
    for task in ("shape", "colour"):
        print(f"{name:<16} {task:<7}" + "".join(f"{knn_accuracy(name, k, task):>8.1%}" for k in (1, 5, 20)))

# %% nbgrader={"grade": true, "grade_id": "task_5_4", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 5.4.
### BEGIN HIDDEN TESTS
grade_task("5.4")
### END HIDDEN TESTS

# %% [markdown]
# ## 6. Task 5.5: the linear probe
#
# k-NN needs same-class images to be *close*; a linear probe only needs the classes to be
# *linearly separable*, so it still works when directions of large, irrelevant variance dominate the
# distances. Implement `linear_probe` in `probe.py`: standardise every feature dimension with the
# training set's mean and std (and nothing computed from the test set), then train `nn.Linear(D, K)`
# full-batch with AdamW, and return the test logits. Because nothing comes from the test set, a test
# image's logits cannot depend on which other images are in the test set; the checks test exactly that,
# first on random features (nothing trained needed), then on the supervised ViT's.
#
# *At SMOKE scale on the 2-core machine: about 3 s (measured 2026-12-04, under load).*

# %%
toy = torch.Generator().manual_seed(0)
toy_train, toy_test = torch.randn(60, 10, generator=toy), 3 + torch.randn(30, 10, generator=toy)  # test set shifted
toy_labels = torch.arange(60) % 3
among_all = linear_probe(toy_train, toy_labels, toy_test)  # (30, 3)
for n in (1, 5):
    compare(f"probe logits of {n} random test point(s) alone vs among 30",
            linear_probe(toy_train, toy_labels, toy_test[:n]), among_all[:n], tol=1e-6)

# %%
@cache
def probe_accuracy(name: str, labels: str = "shape") -> float:
    bank, bank_y, queries, queries_y = frozen_features(name)
    if labels == "colour":
        bank_y, queries_y = c_train, c_test
    return float((linear_probe(bank, bank_y, queries).argmax(1) == queries_y).float().mean())


train_f, train_y, test_f, test_y = frozen_features("supervised ViT")
compare("probe logits of 50 test images alone vs inside the whole test set",
        linear_probe(train_f, train_y, test_f[:50]), linear_probe(train_f, train_y, test_f)[:50], tol=1e-6)

probe = {(name, task): probe_accuracy(name, task) for name in TINY_MODELS for task in ("shape", "colour")}
for (name, task), accuracy in probe.items():
    print(f"linear probe on {name:<15} features, {task:<6}: {accuracy:.1%}")

# %% nbgrader={"grade": true, "grade_id": "task_5_5", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 5.5.
### BEGIN HIDDEN TESTS
grade_task("5.5")
### END HIDDEN TESTS

# %% [markdown]
# ## 7. One test set, every method
#
# The same 500 test images (at FULL scale 2,000), two label sets: the shape, which the supervised
# model was trained on, and the colour, which neither model was trained to predict.
#
# *At SMOKE scale on the 2-core machine: about 43 s (measured 2026-12-04, under load).*

# %%
rows = [("supervised ViT: its own head", head_accuracy(), None)]
rows += [("supervised ViT features: k-NN, k=20", knn_accuracy("supervised ViT", 20),
          knn_accuracy("supervised ViT", 20, "colour")),
         ("supervised ViT features: linear probe", probe_accuracy("supervised ViT"),
          probe_accuracy("supervised ViT", "colour")),
         ("tiny CLIP: zero-shot (ensemble)",
          zero_shot_table("shape")[f"ensemble of the first {len(ZERO_SHOT_TEMPLATES)}"],
          zero_shot_table("colour")["ensemble of the first 2"]),
         ("tiny CLIP features: k-NN, k=20", knn_accuracy("tiny CLIP", 20), knn_accuracy("tiny CLIP", 20, "colour")),
         ("tiny CLIP features: linear probe", probe_accuracy("tiny CLIP"), probe_accuracy("tiny CLIP", "colour"))]
print(f"{'method (tiny models trained in this notebook)':<46} {'shape':>7} {'colour':>7}")
for name, shape_accuracy, colour_accuracy in rows:
    colour = "-" if colour_accuracy is None else f"{colour_accuracy:.1%}"
    print(f"{name:<46} {shape_accuracy:>7.1%} {colour:>7}")

# %%
N_TSNE = SCALE.pick(smoke=400, full=2000)


def tsne(points: torch.Tensor) -> np.ndarray:
    return TSNE(n_components=2, perplexity=30, init="pca", max_iter=SCALE.pick(smoke=500, full=1000),
                random_state=0).fit_transform(points.numpy())


fig, axes = plt.subplots(2, 2, figsize=(12, 11))
for col, name in enumerate(TINY_MODELS):
    points = tsne(frozen_features(name)[2][:N_TSNE])
    for row, (labels, classes) in enumerate(((y_test, SHAPE_CLASSES), (c_test, COLOUR_NAMES))):
        ax = axes[row, col]
        for k, cls in enumerate(classes):
            chosen = (labels[:N_TSNE] == k).numpy()
            colour = COLOURS[cls] if row == 1 else f"C{k}"
            ax.scatter(points[chosen, 0], points[chosen, 1], s=8, color=colour, label=cls)
        if row == 1:
            ax.set_facecolor("0.25")  # the shapes' own colours, white included, on a dark ground
        ax.set_title(f"{name}: coloured by {'shape' if row == 0 else 'colour'}")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(fontsize=7, markerscale=2, loc="best")
plt.tight_layout()
plt.show()

# %% [markdown]
# ### What the training signal buys
#
# Read the table and the four maps together.
#
# * The supervised features are organised by what the labels named: one cluster per shape (top
#   left), every colour mixed inside each (bottom left). Training gave the model no reason to keep
#   colour, and colour k-NN on these features is far below colour k-NN on the tiny CLIP's; a
#   linear probe recovers some colour, not all.
# * The tiny CLIP's captions named the colour and (mostly) the shape, and its features keep both.
#   In its maps colour is the coarse organisation (bottom right: colour names are easy words to
#   match) and shapes form smaller groups inside each colour (top right). One feature table answers
#   both questions, by k-NN, by a probe, or by writing new class names (zero-shot) without touching
#   the model. It pays for the breadth on the supervised task: its shape accuracy trails the
#   supervised model's.
# * On the task it was trained for, with its own head, the supervised model is hard to beat. The
#   case for features learned without task labels is breadth: they serve tasks nobody labelled for.
#   DINOv2 pushes this to the extreme, with no text either. It starts from DINO's self-distillation
#   (a student network matches a momentum teacher's centred, sharpened output on another crop of
#   the same image) and adds iBOT's masked-token loss (the student, shown an image with patches
#   masked, predicts the teacher's output for those patch tokens), the KoLeo regulariser (spreads
#   the features of a batch evenly), Sinkhorn-Knopp centring of the teacher (from SwAV, in place of
#   DINO's moving-average centre) and 142 million curated images (LVD-142M); the small models are
#   distilled from the largest. With only images to go on, its features keep whatever distinguishes
#   images, from object identity to part layout to depth cues, and a frozen backbone with a linear
#   head or a k-NN vote does well on tasks from classification to segmentation (Oquab et al. 2024,
#   sections 4 and 7). This week implements none of that training, only the evaluation it is
#   judged by (k-NN, linear probe) and, in section 8, the released ViT-S/14.
#
# The numbers above come from two tiny models on generated shapes; do not read them as facts about
# CLIP or DINOv2. Section 8 compares the real models.
#
# ### Contrastive or masked pre-training?
#
# The curriculum asks how the two families of self-supervised pre-training differ. A **contrastive**
# objective (CLIP's InfoNCE, and in spirit DINO's self-distillation across views) asks the model to
# tell matching pairs from the other items of the batch: it learns whatever tells images (or image
# and caption) apart, at the level of the whole image, and learns to ignore what the augmentations
# or captions treat as "the same". A **masked** objective (MAE, He et al. 2022; BEiT; iBOT, which
# DINOv2 adds) hides most patches and asks the model to fill them in: it must model local
# appearance, texture and layout, with no pressure to make images of one class close. The papers
# report the consequence: MAE's frozen features are weaker for k-NN and linear probes than
# contrastive ones, while they fine-tune better (MAE, section 5), and DINOv2 trains with both losses
# to get features that work frozen.
#
# The same question at toy size, measured: a masked autoencoder with the *same* image tower (your
# Week 2 ViT, 2 blocks of width 64) trained for the *same* budget (600 steps of 128 images, AdamW,
# one-cycle schedule) on the same images, with no labels and no captions. Its encoder sees a random
# 25 % of the patches (4 of 16); a one-block decoder of width 32 predicts the pixels of the other
# 12, each patch normalised (MAE's best target). Its features for the probes are the mean of the 16
# patch tokens with every patch visible (MAE's CLS token gets no direct training signal).

# %%
class TinyMAE(nn.Module):
    """A masked autoencoder (He et al. 2022) at toy size: the Week 2 ViT as encoder, on the visible patches."""

    def __init__(self, mask_ratio: float = 0.75, decoder_dim: int = 32) -> None:
        super().__init__()
        self.encoder = VisionTransformer(**VIT, num_classes=1)  # its head is never used
        n, d = self.encoder.num_patches, VIT["embed_dim"]
        self.keep = round(n * (1 - mask_ratio))  # visible patches per image
        self.decoder_embed = nn.Linear(d, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_pos = nn.Parameter(0.02 * torch.randn(1, n + 1, decoder_dim))
        self.decoder = Block(decoder_dim, num_heads=2, mlp_ratio=2.0)
        self.decoder_norm = nn.LayerNorm(decoder_dim)
        self.predict = nn.Linear(decoder_dim, VIT["patch_size"] ** 2 * 3)  # the pixels of one patch

    def loss(self, images: torch.Tensor) -> torch.Tensor:
        """Mean squared error on the hidden patches' normalised pixels."""
        enc, b, p = self.encoder, images.shape[0], VIT["patch_size"]
        x = enc.patch_embed(images) + enc.pos_embed[:, 1:]  # (B, N, D): every patch, with its position
        n, d = x.shape[1:]
        order = torch.rand(b, n, device=x.device).argsort(dim=1)  # a random permutation of the patches per image
        visible, hidden = order[:, :self.keep], order[:, self.keep:]  # (B, keep), (B, N - keep)
        x = torch.gather(x, 1, visible[..., None].expand(-1, -1, d))  # (B, keep, D)
        cls = (enc.cls_token + enc.pos_embed[:, :1]).expand(b, -1, -1)  # (B, 1, D)
        x = self.decoder_embed(enc.norm(enc.blocks(torch.cat([cls, x], dim=1))))  # (B, 1 + keep, d)
        slots = visible[..., None].expand(-1, -1, x.shape[-1])
        full = self.mask_token.expand(b, n, -1).scatter(1, slots, x[:, 1:])  # (B, N, d): mask tokens elsewhere
        y = self.decoder(torch.cat([x[:, :1], full], dim=1) + self.decoder_pos)  # (B, 1 + N, d)
        pred = self.predict(self.decoder_norm(y))[:, 1:]  # (B, N, P*P*3)
        h, w = images.shape[-2] // p, images.shape[-1] // p
        target = images.reshape(b, 3, h, p, w, p).permute(0, 2, 4, 3, 5, 1).reshape(b, h * w, -1)  # (B, N, P*P*3)
        target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
        index = hidden[..., None].expand(-1, -1, pred.shape[-1])
        return F.mse_loss(pred.gather(1, index), target.gather(1, index))


@cache
def mae_features() -> tuple[torch.Tensor, torch.Tensor]:
    """The tiny MAE, trained on the first call; its (train, test) features: the mean of the patch tokens."""
    mae = TinyMAE()
    history = train(mae, lambda model, index: model.loss(x_train[index].to(DEVICE)), "tiny MAE")
    print(f"tiny MAE: final reconstruction loss {np.mean(history['loss'][-50:]):.3f} (1.0: predicting the mean)")
    encoder = mae.eval().encoder
    embed = lambda images: encoder.forward_features(images)[:, 1:].mean(dim=1)  # (b, D): mean of the patch tokens
    return (extract_features(encoder, loader(x_train, y_train), embed=embed)[0],
            extract_features(encoder, loader(x_test, y_test), embed=embed)[0])


def frozen_accuracy(train_features, test_features, task: str, how: str) -> float:
    """k-NN (k = 20, T = 0.07) or linear-probe accuracy on the test set, for the shape or the colour labels."""
    bank_y, queries_y = (y_train, y_test) if task == "shape" else (c_train, c_test)
    if how == "k-NN":
        return float((knn_predict(train_features, bank_y, test_features, k=20)[1] == queries_y).float().mean())
    return float((linear_probe(train_features, bank_y, test_features).argmax(1) == queries_y).float().mean())


mae_train, mae_test = mae_features()
print(f"\n{'frozen features (same tower, same budget)':<50} {'shape':>7} {'colour':>7}")
for how, label in (("k-NN", "k-NN, k=20"), ("probe", "linear probe")):
    for name, (bank, queries) in (("supervised ViT (labels)", frozen_features("supervised ViT")[::2]),
                                  ("tiny CLIP (contrastive, captions)", frozen_features("tiny CLIP")[::2]),
                                  ("tiny MAE (masked, images only)", (mae_train, mae_test))):
        print(f"{name + ', ' + label:<50} {frozen_accuracy(bank, queries, 'shape', how):>7.1%} "
              f"{frozen_accuracy(bank, queries, 'colour', how):>7.1%}")

# %% [markdown]
# Read it against the question. The masked objective, with no labels and no captions, learned what
# filling in patches needs: the colour is in its features (a linear probe finds most of it), the
# shape category barely (chance is 12.5 %), because nothing in the objective asks for images of one
# shape to be close or separable. The contrastive tiny CLIP, told by its captions which images
# belong together, organised its features by what the captions name. That is the papers' picture in
# miniature: masked modelling gives features to fine-tune, contrastive (or self-distillation)
# features to use frozen, and DINOv2 trains with both. One run of each at toy size: the direction
# of the gap carries over, not its size.

# %% [markdown]
# ## 8. The real models (when their weights are on this machine)
#
# OpenCLIP ViT-B/32 (LAION-2B), DINOv2 ViT-S/14 and a supervised ViT-S/16 (ImageNet-21k, fine-tuned
# on ImageNet-1k), on CIFAR-10 upsampled to 224 x 224: the same test set for CLIP zero-shot, k-NN
# (k = 1, 5, 20) on all three and a linear probe on all three. The weights (about 800 MB together)
# are read from the local cache; downloads are allowed at FULL scale only, or when you set
# `PRETRAINED_DOWNLOAD = True` below on a machine with internet. A model that is missing is skipped
# with a message at SMOKE scale (random weights would only produce meaningless numbers) and is an
# error at FULL scale.
#
# *At SMOKE scale on the 2-core machine: under a second (measured 2026-12-04, under load).*

# %%
PRETRAINED_DOWNLOAD = SCALE.pick(smoke=False, full=True)


@contextmanager
def downloads(allowed: bool):
    """Inside the block, VIT_OFFLINE=1 unless downloads are allowed: the loaders then only read the cache."""
    old = os.environ.get("VIT_OFFLINE")
    if not allowed:
        os.environ["VIT_OFFLINE"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("VIT_OFFLINE", None)
        else:
            os.environ["VIT_OFFLINE"] = old


def pretrained(load, name: str, *args, **kwargs):
    """The loader's result with pretrained weights, or None (SMOKE) when they are not available."""
    with downloads(PRETRAINED_DOWNLOAD):
        try:
            return load(name, *args, require=True, **kwargs)
        except WeightsUnavailable as err:
            if SCALE is Scale.FULL:
                raise
            why = (str(err).split(" To fix")[0] if PRETRAINED_DOWNLOAD else
                   "not in the local cache, and downloads are off (PRETRAINED_DOWNLOAD = False)")
            print(f"Skipped {name}: {why}")
            return None


clip_loaded = pretrained(load_open_clip, "ViT-B-32", "laion2b_s34b_b79k")
dino_loaded = pretrained(load_transformers, "facebook/dinov2-small")
vit_loaded = pretrained(load_timm, "vit_small_patch16_224.augreg_in21k_ft_in1k", num_classes=0)
HAVE_PRETRAINED = clip_loaded is not None and dino_loaded is not None and vit_loaded is not None
if not HAVE_PRETRAINED:
    print("\nSection 8 is skipped: not every pretrained model is on this machine. Sections 1-7 are complete "
          "without them; at FULL scale (or with PRETRAINED_DOWNLOAD = True online) this section runs.")

# %%
if HAVE_PRETRAINED:
    real = load_cifar10(n_train=SCALE.pick(smoke=1000, full=None), n_test=SCALE.pick(smoke=500, full=None))
    clip_model, _, clip_tokenizer, _ = clip_loaded
    dino_model, _ = dino_loaded
    vit_model, _ = vit_loaded
    for model in (clip_model, dino_model, vit_model):
        model.to(DEVICE)
    clip_cfg = open_clip.get_model_preprocess_cfg(clip_model)
    clip_size = clip_cfg["size"] if isinstance(clip_cfg["size"], int) else clip_cfg["size"][0]
    vit_cfg = vit_model.pretrained_cfg
    IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # DINOv2's image processor normalises with these

    def resized(embed, size: int, mean, std):
        """(b, 3, 32, 32) in [0, 1] -> bicubic to size x size, normalised -> embed(...)."""
        mean_, std_ = (torch.tensor(v, device=DEVICE).view(1, 3, 1, 1) for v in (mean, std))

        def run(images: torch.Tensor) -> torch.Tensor:
            x = F.interpolate(images, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
            return embed((x - mean_) / std_)
        return run

    embeds = {
        "supervised ViT-S/16": resized(vit_model, 224, vit_cfg["mean"], vit_cfg["std"]),
        "DINOv2 ViT-S/14": resized(lambda x: dino_model(pixel_values=x).pooler_output, 224, *IMAGENET),
        "CLIP ViT-B/32": resized(clip_model.encode_image, clip_size, clip_cfg["mean"], clip_cfg["std"]),
    }
    real_loaders = (DataLoader(TensorDataset(real.x_train, real.y_train), batch_size=128),
                    DataLoader(TensorDataset(real.x_test, real.y_test), batch_size=128))
    big = {name: (*extract_features(model, real_loaders[0], embed=embed), *extract_features(model, real_loaders[1],
                                                                                          embed=embed))
           for name, embed, model in zip(embeds, embeds.values(), (vit_model, dino_model, clip_model))}

    def clip_encode_text(texts: list[str]) -> torch.Tensor:
        return clip_model.encode_text(clip_tokenizer(texts).to(DEVICE))

    CIFAR_TEMPLATES = ("a photo of a {}.", "a blurry photo of a {}.", "a black and white photo of a {}.",
                       "a low contrast photo of a {}.", "a photo of a small {}.", "a drawing of a {}.",
                       "itap of a {}.", "{}")
    real_table = template_table(clip_encode_text, real.classes, CIFAR_TEMPLATES, big["CLIP ViT-B/32"][2],
                                real.y_test)
    show_table(real_table, f"CLIP ViT-B/32 zero-shot on {len(real.y_test)} {real.source} test images:")

    print(f"\n{'features':<22}" + "".join(f"{f'k-NN k={k}':>11}" for k in (1, 5, 20)) + f"{'probe':>9}")
    for name, (bank, bank_y, queries, queries_y) in big.items():
        knn = [float((knn_predict(bank, bank_y, queries, k=k)[1] == queries_y).float().mean()) for k in (1, 5, 20)]
        probe_acc = float((linear_probe(bank, bank_y, queries).argmax(1) == queries_y).float().mean())
        print(f"{name:<22}" + "".join(f"{a:>11.1%}" for a in knn) + f"{probe_acc:>9.1%}")

    fig, axes = plt.subplots(1, 3, figsize=(18, 5.5))
    for ax, (name, (_, _, queries, queries_y)) in zip(axes, big.items()):
        points = tsne(queries[:N_TSNE])
        for k, cls in enumerate(real.classes):
            chosen = (queries_y[:N_TSNE] == k).numpy()
            ax.scatter(points[chosen, 0], points[chosen, 1], s=6, label=cls)
        ax.set_title(f"{name} features, {real.source} test")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].legend(fontsize=7, markerscale=2)
    plt.tight_layout()
    plt.show()
print(f"notebook ran in {time.monotonic() - NOTEBOOK_START:.0f} s at {SCALE.value.upper()} scale")

# %% [markdown]
# ## 9. Reflect
#
# Not graded; next week assumes you can answer them.
#
# 1. The loss treats every other caption in the batch as a negative. What happens when two images
#    in a batch share a caption (section 2)? Why does a larger batch help CLIP, apart from speed?
# 2. Why divide by a temperature at all, when a scale on the features would do the same? What
#    limits how small the learned temperature gets?
# 3. The tiny CLIP shrugged off unknown words ("photo", "blurry") but not a colour word or "not a
#    circle". Why the difference? Which of the two failures would a real CLIP, with a 12-layer
#    text transformer, still show?
# 4. k-NN with weights $\exp(s/T)$ and $T \to 0$ becomes which classifier? And $T \to \infty$?
# 5. CLIP learns from captions and DINOv2 from images alone. Name a task where you would expect
#    DINOv2's features to beat CLIP's, and one where you would expect the opposite.
