# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Week 3 · Training ViTs: the recipe, augmentation, distillation, fine-tuning
#
# Last week's ViT has almost no built-in knowledge of images: no locality, no translation
# equivariance, only a learned table of positions. Dosovitskiy et al. pretrained it on 14 to 300
# million images (ImageNet-21k, JFT-300M) before it matched the best ResNets. Touvron et al., *Training data-efficient image transformers &
# distillation through attention* (DeiT, ICML 2021), trained the same architecture on ImageNet-1k
# alone, with a *recipe*: AdamW with warmup and cosine decay, strong augmentation (RandAugment,
# Mixup, CutMix), label smoothing, and distillation from a CNN through an extra token. This week
# you write the pieces of that recipe, then train with them.
#
# You write six small modules of `src/vitcourse/` (in an nbgrader assignment folder: `vitcourse/`
# next to this notebook): `schedules.py` (Task 3.1), `optim.py` (3.2), `augment.py` (3.3),
# `distill.py` (3.4), `training.py` (3.5) and `finetune.py` (3.6). Weeks 1 and 2 are graded with
# the reference solution, so an old bug never costs points twice.
#
# The same functions drive the course's training command, `python -m vitcourse.train` (see the
# week's README): once your tests pass, it trains on *your* code, on a laptop (SMOKE) or a GPU
# (FULL). Each check prints a relative error next to the tolerance it expects. Those checks and
# the public tests (`vitgrade check 3`) are for feedback only; the hidden tests decide the grade.
#
# *At SMOKE scale on the 2-core machine, imports and data take about 13 s; every section
# states its own time (all measured 2026-12-04, under load).*

# %%
# %load_ext autoreload
# %autoreload 2
import copy
import dataclasses
import time

import matplotlib.pyplot as plt
import timm
import torch
import torch.nn.functional as F
from timm.models.deit import VisionTransformerDistilled
from timm.optim import param_groups_weight_decay
from timm.scheduler import CosineLRScheduler
from torch import nn

from vitcourse.augment import MixupCutmix, cutmix, mixup, one_hot, soft_target_cross_entropy
from vitcourse.checks import compare
from vitcourse.data import load_dataset
from vitcourse.distill import DistilledVisionTransformer, hard_distillation_loss, soft_distillation_loss
from vitcourse.finetune import count_parameters, prepare_finetune
from vitcourse.models import finetune_model, hf_finetune_model, save_week3_models, week3_dir, writable_dir
from vitcourse.optim import param_groups
from vitcourse.scale import SCALE, scale_banner
from vitcourse.schedules import warmup_cosine
from vitcourse.train import RECIPES, FinetuneConfig, benchmark, finetune, fit_cached, load_data
from vitcourse.training import evaluate, load_checkpoint, read_metrics, save_checkpoint, train_one_epoch
from vitcourse.vit import VisionTransformer, vit_flops

print(scale_banner())
torch.manual_seed(0)
NOTEBOOK_START = time.monotonic()
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
RUNS = writable_dir(week3_dir() / "runs")  # logs and checkpoints of this notebook's runs
DATASET = SCALE.pick(smoke="digits", full="cifar10")
data = load_data(DATASET)  # at FULL scale: CIFAR-10, or a clear error naming the fix if it is not available
print(f"{len(data.y_train)} training and {len(data.y_test)} test images of {len(data.classes)} classes "
      f"({data.source}); training on {DEVICE}")

# %% [markdown]
# ## 1. Task 3.1: warmup, then cosine decay
#
# A transformer at initialisation is fragile: Adam's second-moment estimates come from a handful of
# gradients, attention logits and LayerNorm gains are far from where they settle, and one
# full-size step can throw the model somewhere it never leaves (the loss plateaus, or diverges).
# So the learning rate rises linearly from 0 over W *warmup* steps, then decays along a half
# cosine to a floor at the last step S:
#
# $$\mathrm{lr}(s) = \begin{cases} \mathrm{base} \cdot s / W & s < W \\
#   \mathrm{min} + (\mathrm{base} - \mathrm{min})\,\tfrac12\left(1 + \cos\!\left(\pi\,\frac{s - W}{S - W}\right)\right) & W \le s \le S \\
#   \mathrm{min} & s > S \end{cases}$$
#
# Implement `warmup_cosine(step, total_steps, warmup_steps, base_lr, min_lr)` in `schedules.py`: a
# pure function of the step (raise `ValueError` for a negative step or warmup, or
# `total_steps <= warmup_steps`). `warmup_cosine_scheduler` (given) wraps it in a `LambdaLR`.
#
# The check: timm's `CosineLRScheduler` with `warmup_prefix=True` computes the same curve.
#
# *At SMOKE scale on the 2-core machine: under a second (measured 2026-12-04, under load).*

# %%
total, warmup, base, floor = 200, 20, 1e-3, 1e-5
optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=base)
reference = CosineLRScheduler(optimizer, t_initial=total - warmup, lr_min=floor, warmup_t=warmup,
                              warmup_lr_init=0.0, warmup_prefix=True, t_in_epochs=False)
timm_curve = []
for step in range(total + 20):
    reference.step_update(step)
    timm_curve.append(optimizer.param_groups[0]["lr"])
mine = [warmup_cosine(step, total, warmup, base, floor) for step in range(total + 20)]
compare("warmup_cosine vs timm's CosineLRScheduler, 220 steps", torch.tensor(mine), torch.tensor(timm_curve),
        tol=1e-9)
print(f"lr(0) = {mine[0]}, lr(W) = {mine[warmup]:.1e}, lr(S) = {mine[total]:.1e}")

fig, ax = plt.subplots(figsize=(7, 3))
ax.plot(mine, label=f"warmup {warmup}, floor {floor:g}")
ax.plot([warmup_cosine(s, total, 0, base) for s in range(total + 20)], "--", label="no warmup, floor 0")
ax.axvline(total, color="k", lw=0.5)
ax.set(xlabel="optimizer step", ylabel="learning rate", title="Linear warmup, then cosine decay")
ax.legend()
plt.show()

# %% nbgrader={"grade": true, "grade_id": "task_3_1", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 3.1: the hidden tests run here when your work is graded.
### BEGIN HIDDEN TESTS
from vitgrade.autograde.nbcell import grade_task  # noqa: E402

grade_task("3.1")
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Task 3.2: weight decay where it means something
#
# AdamW shrinks every decayed parameter by `lr * weight_decay` of itself each step, separately from
# the gradient step. On a weight matrix that is a useful prior (small maps, tame activations). On
# a LayerNorm gain it slowly switches channels off; on `pos_embed`, `cls_token` and `dist_token`
# it pulls learned *embeddings* towards the zero vector. So the parameters go into two groups.
#
# Implement `param_groups(model, weight_decay)` in `optim.py`: no decay for every parameter with
# `ndim <= 1`, every name ending in `.bias`, and every parameter whose own name (after the last
# dot) is `pos_embed`, `cls_token` or `dist_token`; decay for the rest; frozen parameters in
# neither group. The no-decay group comes first, an empty group is left out. timm's
# `param_groups_weight_decay` is the reference.
#
# *At SMOKE scale on the 2-core machine: under a second (measured 2026-12-04, under load).*

# %%
vit = VisionTransformer(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4, num_classes=10)
names = {id(p): n for n, p in vit.named_parameters()}
mine = [(g["weight_decay"], [names[id(p)] for p in g["params"]]) for g in param_groups(vit, 0.05)]
theirs = [(g["weight_decay"], [names[id(p)] for p in g["params"]])
          for g in param_groups_weight_decay(vit, 0.05, no_weight_decay_list=("pos_embed", "cls_token", "dist_token"))]
print("the same groups as timm:", mine == theirs)
for decay, group in mine:
    size = sum(p.numel() for p in vit.parameters() if names[id(p)] in group)
    print(f"weight_decay {decay}: {len(group):>2} tensors, {size:>7,} numbers, e.g. {group[:4]}")

# %% nbgrader={"grade": true, "grade_id": "task_3_2", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 3.2.
### BEGIN HIDDEN TESTS
grade_task("3.2")
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Task 3.3: Mixup, CutMix and soft targets
#
# A ViT has to learn from data what a CNN gets from its architecture, so it needs more (or more
# varied) data. Two augmentations make new training examples out of pairs:
#
# * **Mixup**: blend two images, $\tilde x = \lambda x_i + (1 - \lambda) x_j$, and their labels in
#   the same proportion;
# * **CutMix**: paste a box of image j into image i; the label is mixed by *area*,
#   $\lambda = 1 - \text{box area} / (HW)$. The box is drawn with sides $\sqrt{1-\lambda}$ of the
#   image around a random centre and clipped at the border, so $\lambda$ must be recomputed from the
#   box actually pasted.
#
# The targets become *soft*: rows of class probabilities. Label smoothing softens them further
# ($1 - \varepsilon + \varepsilon/K$ on the label, $\varepsilon/K$ elsewhere), and the loss is the
# cross-entropy against a distribution. The one rule that is easy to break: **one** permutation
# pairs the images *and* the labels.
#
# Implement in `augment.py`: `one_hot`, `soft_target_cross_entropy`, `mixup`, `cutmix_box`, `cutmix`
# and `MixupCutmix.__call__` (the docstrings give the order of the random draws).
#
# *At SMOKE scale on the 2-core machine: about 2 s (measured 2026-12-04, under load).*

# %%
logits, labels = torch.randn(8, 10), torch.randint(0, 10, (8,))
compare("soft_target_cross_entropy(logits, one_hot(y, eps=0.1)) vs F.cross_entropy(label_smoothing=0.1)",
        soft_target_cross_entropy(logits, one_hot(labels, 10, 0.1)), F.cross_entropy(logits, labels,
                                                                                     label_smoothing=0.1))
images = data.x_train[:8].float() / (255.0 if data.x_train.dtype == torch.uint8 else 1.0)  # (8, 3, 32, 32) in [0, 1]
identity = one_hot(torch.arange(8), 8)  # a label per image, so every share can be read off
perm = torch.roll(torch.arange(8), 1)  # image i is mixed with image i - 1
mixed, mixed_targets = mixup(images, identity, 0.6, perm)
compare("mixup: target i's share of image perm[i]'s label equals the blend weight 1 - 0.6",
        mixed_targets[torch.arange(8), perm], torch.full((8,), 0.4))
compare("mixup: the pixels are blended with the same weights", mixed, 0.6 * images + 0.4 * images[perm])
targets = one_hot(data.y_train[:8], len(data.classes))
torch.manual_seed(3)
cut, cut_targets, lam = cutmix(images, targets, 0.6, perm)
pasted = (cut != images).any(dim=1)[0].float().mean()  # the fraction of pixels that came from another image
compare("cutmix: 1 - the returned lam vs the fraction of pixels pasted", torch.tensor(1 - lam), pasted)
print(f"cutmix drew lam = 0.6; the box, clipped at the border, covers {pasted:.3f} of the image: lam = {lam:.3f}")

torch.manual_seed(0)
mixer = MixupCutmix(len(data.classes), mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1)
examples = [mixer(images, data.y_train[:8]) for _ in range(2)]
fig, axes = plt.subplots(2, 8, figsize=(15, 4.2))
for row, (batch, soft) in zip(axes, examples):
    for ax, image, target in zip(row, batch, soft):
        ax.imshow(image.permute(1, 2, 0).clamp(0, 1))
        top = target.topk(2)
        ax.set_title(" + ".join(f"{data.classes[int(i)].split()[-1]} {float(v):.2f}" for v, i in zip(*top)),
                     fontsize=8)
        ax.axis("off")
fig.suptitle("Two batches from MixupCutmix (one chose Mixup, one CutMix): the two largest target entries")
plt.tight_layout()
plt.show()

# %% nbgrader={"grade": true, "grade_id": "task_3_3", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 3.3.
### BEGIN HIDDEN TESTS
grade_task("3.3")
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Task 3.4: knowledge distillation
#
# A trained *teacher* knows more than the labels say: which wrong classes are plausible (a 7 that
# looks like a 1). Hinton et al. (2015) train the student to match the teacher's distribution,
# softened by a temperature T:
#
# $$L_\text{soft} = T^2 \cdot \mathrm{KL}\big(\mathrm{softmax}(z_t/T) \,\|\, \mathrm{softmax}(z_s/T)\big)$$
#
# with the KL summed over classes and averaged over the batch (`reduction="batchmean"`). The
# gradient of the KL term shrinks like $1/T^2$; the factor $T^2$ undoes that, so the weight
# $\alpha$ of the term means the same at every temperature.
#
# DeiT's **hard distillation** uses only the teacher's decision, $L_\text{hard} = \mathrm{CE}(z_s,
# \arg\max z_t)$, and gives the student a second learned token, the **distillation token**, with its
# own head. The CLS head learns from the labels, the distillation head from the teacher:
# $L = (1-\alpha)\,\mathrm{CE}(z_\text{cls}, y) + \alpha\,L_\text{teacher}(z_\text{dist})$. While
# training, the model returns both logits; at test time, their mean.
#
# Implement in `distill.py`: `soft_distillation_loss`, `hard_distillation_loss`,
# `distillation_loss`, and `DistilledVisionTransformer` (your Week 2 ViT plus `dist_token`, a
# `pos_embed` of N + 2 rows and `head_dist`, with timm's parameter names).
#
# *At SMOKE scale on the 2-core machine: under a second (measured 2026-12-04, under load).*

# %%
student_logits, teacher_logits = torch.randn(16, 10), 3 * torch.randn(16, 10)
for t in (1.0, 4.0):
    reference = F.kl_div(F.log_softmax(student_logits / t, -1), F.softmax(teacher_logits / t, -1),
                         reduction="batchmean") * t * t
    compare(f"soft_distillation_loss at T={t} vs T^2 * F.kl_div(batchmean)",
            soft_distillation_loss(student_logits, teacher_logits, t), reference)
norms = []
for t in (8.0, 16.0):
    s = student_logits.clone().requires_grad_(True)
    soft_distillation_loss(s, teacher_logits, t).backward()
    norms.append(s.grad.norm())
print(f"gradient norm at T=8 / at T=16: {norms[0] / norms[1]:.3f} (with T^2: near 1; without: near 4)")
compare("hard_distillation_loss vs CE(student, teacher.argmax)", hard_distillation_loss(student_logits, teacher_logits),
        F.cross_entropy(student_logits, teacher_logits.argmax(-1)))

deit_cfg = dict(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, mlp_ratio=2.0, num_classes=10)
reference = VisionTransformerDistilled(**deit_cfg)
with torch.no_grad():  # weights far from the init, so small differences show
    for p in reference.parameters():
        p.normal_(0, 0.2)
mine = DistilledVisionTransformer(**deit_cfg)
mine.load_state_dict(reference.state_dict(), strict=True)  # fails loudly on a wrong name or shape
x = torch.randn(4, 3, 32, 32)
reference.set_distilled_training(True)
with torch.no_grad():
    compare("eval: mean of both heads vs timm's VisionTransformerDistilled", mine.eval()(x), reference.eval()(x),
            tol=1e-5)
    (cls_mine, dist_mine), (cls_ref, dist_ref) = mine.train()(x), reference.train()(x)
compare("train: cls logits vs timm", cls_mine, cls_ref, tol=1e-5)
compare("train: dist logits vs timm", dist_mine, dist_ref, tol=1e-5)

# %% nbgrader={"grade": true, "grade_id": "task_3_4", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 3.4.
### BEGIN HIDDEN TESTS
grade_task("3.4")
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Task 3.5: the training loop
#
# Implement in `training.py`:
# * `train_one_epoch(model, loader, optimizer, criterion, scheduler=, mix=, clip_grad=, amp=, logger=, ...)`:
#   per batch, mix (optional), forward and loss (under bfloat16 autocast when `amp` is on and the
#   device is CUDA), backward, **clip the global gradient norm after backward and before the
#   step**, optimizer step, scheduler step; log the loss and the learning rate every `log_every`
#   steps; a tqdm bar; return the per-image mean loss and accuracy and the global step.
#   The criterion is called as `criterion(images, outputs, targets)`: the images are there so a
#   distillation loss can ask its teacher (DeiT's convention).
# * `evaluate(model, loader)`: eval mode, no gradients, per-image loss and accuracy.
# * `MetricLogger`: rows `step,tag,value` in `metrics.csv`, and the same scalars in TensorBoard.
# * `save_checkpoint` / `load_checkpoint`: the model, the optimizer, the scheduler, the epoch and
#   step, and **the state of every random generator**: the data order, the augmentation, Mixup's
#   draws and dropout all come from them. Without them a resumed run trains on other batches.
#
# Two checks: the loop must be able to memorise a tiny batch, and a run resumed from a checkpoint
# must produce exactly the losses of a run that never stopped.
#
# *At SMOKE scale on the 2-core machine: under a second (measured 2026-12-04, under load).*

# %%
gen = torch.Generator().manual_seed(0)
tiny_x, tiny_y = torch.randn(16, 3, 16, 16, generator=gen), torch.randint(0, 4, (16,), generator=gen)
torch.manual_seed(0)  # the loop alone: any model must memorise one batch (this one needs no Week 2 code)
memoriser = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 64), nn.GELU(), nn.Linear(64, 4))
optimizer = torch.optim.AdamW(memoriser.parameters(), lr=3e-3, weight_decay=0.0)
plain = lambda images, outputs, targets: F.cross_entropy(outputs, targets)
for _ in range(40):
    train_one_epoch(memoriser, [(tiny_x, tiny_y)], optimizer, plain, progress=False)
print(f"a small MLP after 40 steps on one batch of 16 random images with random labels: "
      f"{evaluate(memoriser, [(tiny_x, tiny_y)])['acc']:.0%} training accuracy (it must memorise them)")

# %%
def tiny_run(epochs, resume_from=None, save_to=None, seed=0):
    """A small MLP with dropout, a shuffled loader, a warmup schedule and a Mixup-like mix: everything random
    is on. Only Task 3.5's functions are yours here (the schedule and the mix are written out), so this check
    runs as soon as the loop and the checkpoint do."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 32), nn.GELU(), nn.Dropout(0.1), nn.Linear(32, 4))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.05)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 4) * 0.9**s)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(tiny_x, tiny_y), batch_size=8, shuffle=True)
    losses, step = [], 0

    def mix(images, labels):  # Mixup with a random weight and partner, drawn from torch's generator
        lam, perm = float(torch.rand(())), torch.randperm(len(labels))
        onehot = F.one_hot(labels, 4).float()
        return lam * images + (1 - lam) * images[perm], lam * onehot + (1 - lam) * onehot[perm]

    def recorded(images, outputs, targets):  # the criterion, remembering every loss
        loss = -(targets * F.log_softmax(outputs, dim=-1)).sum(dim=-1).mean()  # cross-entropy on soft targets
        losses.append(float(loss.detach()))
        return loss

    if resume_from:
        step = load_checkpoint(resume_from, model, optimizer, scheduler)["step"]
    for _ in range(epochs):
        step = train_one_epoch(model, loader, optimizer, recorded, scheduler=scheduler, mix=mix, clip_grad=1.0,
                               step=step, progress=False)["step"]
    if save_to:
        save_checkpoint(save_to, model, optimizer, scheduler, epoch=epochs, step=step)
    return model, losses


checkpoint = RUNS / "tiny-checkpoint.pt"
_, straight = tiny_run(4)
tiny_run(2, save_to=checkpoint)
torch.manual_seed(123)  # other random numbers are drawn before the resume
_, resumed = tiny_run(2, resume_from=checkpoint, seed=7)
compare("losses of epochs 3-4 after a resume vs a run that never stopped", torch.tensor(resumed),
        torch.tensor(straight[-len(resumed):]), tol=1e-6)
checkpoint.unlink()


# %% nbgrader={"grade": true, "grade_id": "task_3_5", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 3.5.
### BEGIN HIDDEN TESTS
grade_task("3.5")
### END HIDDEN TESTS

# %% [markdown]
# ## 6. Task 3.6: fine-tuning helpers
#
# To reuse a pretrained model on a new dataset, give it a fresh head (`model.reset_classifier(K)`)
# and then either
# * train only the head (a **linear probe**: every other parameter frozen), or
# * train everything (**full fine-tuning**), with a small learning rate.
#
# Implement in `finetune.py`: `freeze_all_but_head` (the head is whatever `model.get_classifier()`
# names: `head` in a ViT, `fc` in a ResNet, `head.fc` in a ConvNeXt, both heads of a distilled
# DeiT), `unfreeze_all`, `count_parameters` (trainable, total) and `prepare_finetune(model, mode)`.
# Your `param_groups` already leaves frozen parameters out of the optimizer.
#
# The real ViT-B/16 is built on PyTorch's *meta* device below: shapes without memory, so counting
# its 86 million parameters costs nothing.
#
# *At SMOKE scale on the 2-core machine: under a second (measured 2026-12-04, under load).*

# %%
with torch.device("meta"):
    vit_b = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=101)
for mode in ("linear_probe", "full"):
    trainable, total = count_parameters(prepare_finetune(vit_b, mode))
    print(f"ViT-B/16 with a 101-class head, {mode:>12}: {trainable:>11,} of {total:,} parameters trainable "
          f"({trainable / total:.3%})")
resnet = timm.create_model("resnet18", pretrained=False, num_classes=5, layers=(1, 1, 1, 1), channels=(8, 8, 8, 8),
                           stem_width=8)
prepare_finetune(resnet, "linear_probe")
print("a ResNet's linear probe trains:", [n for n, p in resnet.named_parameters() if p.requires_grad])

# %% nbgrader={"grade": true, "grade_id": "task_3_6", "locked": true, "schema_version": 3, "solution": false}
# Autograder cell for Task 3.6.
### BEGIN HIDDEN TESTS
grade_task("3.6")
### END HIDDEN TESTS

# %% [markdown]
# ## 7. Training a ViT from scratch, with and without a teacher
#
# Now the pieces together. `vitcourse.train` holds the recipes and `fit`, which calls your
# functions: `make_adamw` (your parameter groups), `warmup_cosine_scheduler` (your schedule),
# `MixupCutmix` (your targets), `train_one_epoch` and `evaluate` after every epoch, and, given a
# teacher, `DistillationLoss` (your `distillation_loss`). The data live on the device
# (`vitcourse.batches.DeviceBatches`) and are augmented there, a whole batch per call.
#
# * **SMOKE** (this CPU): scikit-learn's 8 x 8 handwritten digits, upsampled to 32 x 32 and
#   coloured, 1,498 training and 299 test images. A 4-block ViT of width 64 with **patch 8**
#   (16 tokens), random shifts of up to 2 pixels and label smoothing 0.1, AdamW (lr 4e-3, batch 128,
#   2 warmup epochs, weight decay 0.05), 50 epochs.
# * **FULL** (a GPU): CIFAR-10, a 7-block ViT of width 384 with **patch 4** (64 tokens), random crops
#   and flips, RandAugment(2, 9), Mixup 0.8 / CutMix 1.0, label smoothing 0.1, AdamW (lr 1e-3, batch
#   512, 5 warmup epochs), 200 epochs, bfloat16, compiled. The goal is >= 90 % top-1 in <= 10
#   minutes on one H100 (the command: `python -m vitcourse.train fit cifar10-vit`).
#
# ### What a token costs
# Every block's cost grows with the number of tokens N: linearly in the projections and the MLP,
# quadratically in attention. On a CPU that is the whole story of what you can afford: the same
# model at patch 4 sees four times the tokens of patch 8. Measured here, a few training steps each:
#
# *At SMOKE scale on the 2-core machine: about 90 s when it trains (the first run, or after any change
# to the code), about 2 s when it reads the runs back (measured 2026-12-04, under load).*

# %%
rows = []
recipe = RECIPES[SCALE.pick(smoke="digits-vit", full="cifar10-vit")]
for patch in (16, 8, 4):
    probe = dataclasses.replace(recipe, name=f"P{patch}", model=dict(recipe.model, patch_size=patch))
    speed = benchmark(probe, steps=SCALE.pick(smoke=3, full=20), warmup=SCALE.pick(smoke=1, full=5),
                      batch_size=SCALE.pick(smoke=64, full=512))
    flops = vit_flops(**dict(probe.model, num_classes=10))
    epoch = len(data.y_train) / speed["images_per_s"]
    rows.append((patch, (32 // patch) ** 2, flops, speed["images_per_s"], epoch))
print(f"{'patch':>5} {'tokens':>6} {'forward FLOPs/image':>20} {'images/s':>9} {'s per epoch here':>17}")
for patch, tokens, flops, speed, epoch in rows:
    print(f"{patch:>5} {tokens:>6} {flops:>20,} {speed:>9,.0f} {epoch:>17.2f}")

# %% [markdown]
# ### The CNN teacher
# A teacher is only worth distilling from if it is *better* than the student will be: a weak
# teacher hands its mistakes on. The teacher here is a three-stage CNN (`vitcourse.models.ConvNet`:
# convolution, BatchNorm, GELU, max pooling), trained with the same loop and augmentation.
#
# Every run goes to `data/cache/03_training/runs/<recipe>/` with a record of what decided it (the
# recipe, the seed, the data, the teacher's weights, torch's version and the source of every
# `vitcourse` module, yours included). Run the notebook again with the same code and the run is
# read back from there instead of trained again (`fit_cached` says so and prints what the original
# run took); change any of it and it trains again. Training on the CPU is deterministic, so the
# numbers are the same either way. The course's own runs of these recipes, made by the reference
# solution, ship in `data/runs/`: with `VIT_COURSE_RUNS=1` the notebook reads them instead of training
# (the course's CI does, and so does the grader when it re-runs your notebook; the printed line then
# says so). Your grade never comes from these runs: the hidden tests run your own code.

# %%
def run(recipe, teacher=None):
    """fit() one recipe (a name in RECIPES, or a Recipe) into RUNS/<name>: trained now, or, when that folder
    holds a run of exactly this recipe, data, teacher and code (yours included), read back from it."""
    recipe = RECIPES[recipe] if isinstance(recipe, str) else recipe
    result = fit_cached(recipe, data, RUNS / recipe.name, teacher=teacher, progress=True)
    print(f"{recipe.name}: test accuracy {result.test_acc:.4f} after {len(result.history)} epochs; {result.how} "
          f"{result.wall_seconds:.1f} s wall, {result.cpu_seconds:.1f} s CPU (torch threads: {result.threads})")
    return result


NAMES = {"cnn": SCALE.pick(smoke="digits-cnn", full="cifar10-cnn"),
         "scratch": SCALE.pick(smoke="digits-vit", full="cifar10-vit"),
         "distilled": SCALE.pick(smoke="digits-deit", full="cifar10-deit")}
RESULTS = {}  # "cnn", "scratch", "distilled" -> the result of its run


def trained(key: str):
    """The result of the run NAMES[key], trained the first time a cell asks for it (the distilled
    ViT learns from the CNN). Later cells ask again instead of reusing a variable, so when a task
    is unfinished each of them stops with that task's own message, never with a NameError."""
    if key not in RESULTS:
        teacher = trained("cnn").model if key == "distilled" else None
        RESULTS[key] = run(NAMES[key], teacher=teacher)
    return RESULTS[key]


trained("cnn")

# %% [markdown]
# ### The same ViT, from scratch and distilled
# The distilled model is the same ViT plus a distillation token and its head (DeiT), trained for the
# same number of epochs. At SMOKE scale it learns from the CNN's *soft* targets (T = 4,
# $\alpha = 1/2$): on the digits a near-perfect teacher's *hard* labels are almost exactly the true
# labels, so hard distillation teaches the distillation head little the labels do not (try
# `dataclasses.replace(RECIPES["digits-deit"], distillation="hard")`). At FULL scale the CIFAR-10
# recipe uses DeiT's hard distillation, its best on ImageNet, where random crops often cut the
# object out and the teacher's label for the *crop* differs from the image's.

# %%
trained("scratch")
trained("distilled")

# %% [markdown]
# ### What augmentation buys
# Token count decides what a run costs; augmentation decides much of what it reaches. The same ViT
# and schedule without any augmentation (no shifts, flips, RandAugment or Mixup/CutMix; label
# smoothing kept) sees the same images every epoch, memorises them, and generalises worse. The run
# is on at FULL scale. At SMOKE scale it is off, because CI gives this whole notebook about a
# minute: set `ABLATION = True` to see it (about 20 s on one CPU core, as long as the run from
# scratch); the week's README lists what it gave in the course's own runs.

# %%
ABLATION = SCALE.pick(smoke=False, full=True)
base = RECIPES[NAMES["scratch"]]
no_augmentation = run(dataclasses.replace(base, name=f"{base.name}-no-augmentation", max_shift=0, hflip=False,
                                          randaugment=None, mixup_alpha=0.0, cutmix_alpha=0.0)) if ABLATION else None
if not ABLATION:
    print("the run without augmentation is off at SMOKE scale: set ABLATION = True to run it")

# %% [markdown]
# ### Curves and a table
# The curves are read back from the `metrics.csv` files the logger wrote (TensorBoard shows the
# same: `tensorboard --logdir data/cache/03_training/runs`).

# %%
runs = {"CNN teacher": trained("cnn"), "ViT from scratch": trained("scratch"),
        f"ViT distilled (DeiT, {trained('distilled').recipe.distillation})": trained("distilled")}
if no_augmentation is not None:
    runs["ViT from scratch, no augmentation"] = no_augmentation
fig, axes = plt.subplots(1, 3, figsize=(16, 4))
for label, result in runs.items():
    log = read_metrics(RUNS / result.recipe.name)
    steps, losses = zip(*log["train/loss"]) if "train/loss" in log else ((), ())
    epochs = [row["epoch"] for row in result.history]
    axes[0].plot(steps, losses, label=label)
    axes[1].plot(epochs, [row["test_loss"] for row in result.history], label=label)
    axes[2].plot(epochs, [row["test_acc"] for row in result.history], label=label)
axes[0].set(xlabel="step", ylabel="training loss", title="Training loss (logged every 50 steps)")
axes[1].set(xlabel="epoch", ylabel="test cross-entropy", title="Test loss")
axes[2].set(xlabel="epoch", ylabel="test accuracy", title=f"Test accuracy ({data.source})", ylim=(0.5, 1.0))
axes[2].axhline(RECIPES[NAMES["scratch"]].target_acc, color="k", lw=0.5, ls="--")
for ax in axes:
    ax.legend()
plt.tight_layout()
plt.show()

target = RECIPES[NAMES["scratch"]].target_acc
print(f"{'run':<34} {'test acc':>8} {'epochs':>6} {f'epochs to {target:.0%}':>14} {'wall s':>7} {'CPU s':>6}")
for label, result in runs.items():
    reached = result.epochs_to(target)
    print(f"{label:<34} {result.test_acc:>8.4f} {len(result.history):>6} {str(reached or '-'):>14} "
          f"{result.wall_seconds:>7.1f} {result.cpu_seconds:>6.1f}")

# %% [markdown]
# **Reading the table.** The numbers above are this run's. The accuracy of a single run on 299
# test images moves by about a percentage point from seed to seed (one image is 0.33 %), so read
# small differences between the two ViTs as noise; a difference of several points is not.
#
# With `ABLATION` on, the two from-scratch rows differ only in augmentation. Compare their training
# losses in the first plot (without augmentation the model fits its training set sooner) with their
# test accuracy in the third: the random shifts were worth two to three points on the digits in the
# course's own runs (the week's README lists them).
#
# What distillation can and cannot do here. The teacher is better than the student (compare the
# rows), and its softened outputs carry what the labels do not: which other digits *this* shifted
# image resembles, and how much. The distillation token gives that signal its own head, so it does
# not fight the label head, and at test time the two heads vote. But distillation is not free: the
# teacher's forward pass adds to every step (compare the times), and the student still has to learn
# locality from data. DeiT's gains came on ImageNet with a strong teacher and 300 epochs; on 1,500
# small images with a 50-epoch budget, expect an effect of the order of the seed-to-seed noise, and
# a harmful one when the teacher is weak: a teacher that is wrong where the labels are right pulls
# the distillation head towards its mistakes. (Try it: train the teacher for 2 epochs instead of 10.)
#
# ### Saving the trained models for later weeks
# Weeks 6 (attention maps) and 7 (ViT vs CNN) load these two models offline with
# `vitcourse.models.load_week3_models()`, so their pictures show learned structure.

# %%
vit_config = dict(RECIPES[NAMES["scratch"]].model, num_classes=len(data.classes))
cnn_config = dict(RECIPES[NAMES["cnn"]].model, num_classes=len(data.classes))
scratch, cnn = trained("scratch"), trained("cnn")
folder = save_week3_models(scratch.model.cpu(), vit_config, cnn.model.cpu(), cnn_config, data.mean, data.std,
                           data.classes, data.source, {"vit_test_acc": scratch.test_acc, "cnn_test_acc": cnn.test_acc,
                                                       "distilled_test_acc": trained("distilled").test_acc})
if folder is not None:
    print(f"saved vit.pt and cnn.pt to {folder}")

# %% [markdown]
# ## 8. Fine-tuning a pretrained ViT: linear probe against full fine-tuning
#
# The curriculum's Part 2: `vit_base_patch16_224` pretrained on ImageNet-21k (and fine-tuned on
# ImageNet-1k), fine-tuned on Food-101 (101 dishes, 75,750 training images). At FULL scale this
# runs on a GPU with the real weights and data (both required: a missing one stops here with the
# fix). At SMOKE scale it runs the same code on a **small random-init stand-in** of the model and
# the offline stand-in of the data (the loaders say so): the numbers then only show the code
# works, nothing about transfer.
#
# *At SMOKE scale on the 2-core machine: about 7 s (measured 2026-12-04, under load).*

# %%
config = FinetuneConfig("linear_probe")
food = load_dataset(config.dataset, config.n_train, config.n_test, image_size=config.image_size)
start, _ = finetune_model(config.model, len(food.classes), config.image_size)  # pretrained at FULL, stand-in at SMOKE
FINETUNED = {}  # (library, mode) -> result, made the first time a cell asks (as trained() above)
STARTS = {"timm": start}  # library -> the model every fine-tuning run of that library starts from (a copy)


def finetuned(mode: str, library: str = "timm"):
    if (library, mode) not in FINETUNED:
        config = FinetuneConfig(mode, library=library)
        if library not in STARTS:
            STARTS[library], _ = hf_finetune_model(config.hf_model, len(food.classes), config.image_size)
        wall, cpu = time.perf_counter(), time.process_time()
        result = finetune(config, data=food, model=copy.deepcopy(STARTS[library]),
                          progress=SCALE.pick(smoke=False, full=True))
        print(f"{library} {mode}: test accuracy {result.test_acc:.4f} on {len(food.test)} test images, "
              f"{time.perf_counter() - wall:.1f} s wall, {time.process_time() - cpu:.1f} s CPU, "
              f"peak lr {config.peak_lr:g}")
        FINETUNED[(library, mode)] = result
    return FINETUNED[(library, mode)]


fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
for mode in ("linear_probe", "full"):
    result = finetuned(mode)
    epochs = [row["epoch"] for row in result.history]
    axes[0].plot(epochs, [row["train_loss"] for row in result.history], "o-", label=mode)
    axes[1].plot(epochs, [row["test_acc"] for row in result.history], "o-", label=mode)
axes[0].set(xlabel="epoch", ylabel="training loss", title="Fine-tuning: training loss")
axes[1].set(xlabel="epoch", ylabel="test accuracy", title=f"Fine-tuning: test accuracy ({food.source})")
for ax in axes:
    ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ### Where the model looks, before and after fine-tuning
# The attention of the CLS token to the patches in the last block, averaged over the heads: the
# starting model (pretrained at FULL scale) next to the fully fine-tuned one, on the same test
# images. With pretrained weights the maps show what the model reads; with the SMOKE stand-in they
# show nothing meaningful.

# %%
def cls_attention(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """(B, h, w): the last block's CLS-to-patch attention of a timm ViT, mean over heads."""
    attn = model.blocks[-1].attn
    fused, captured = attn.fused_attn, {}
    attn.fused_attn = False  # the explicit softmax path, so the weights pass through attn_drop
    hook = attn.attn_drop.register_forward_hook(lambda module, args, out: captured.update(weights=out))
    try:
        with torch.no_grad():
            model.eval()(images)
    finally:
        hook.remove()
        attn.fused_attn = fused
    prefix, grid = model.num_prefix_tokens, model.patch_embed.grid_size
    return captured["weights"].mean(1)[:, 0, prefix:].reshape(-1, *grid).float().cpu()  # (B, h, w)


pictures = torch.stack([food.test[i][0] for i in range(4)])  # (4, 3, S, S) in [0, 1]
cfg = start.pretrained_cfg
normalised = (pictures - torch.tensor(cfg["mean"]).view(1, 3, 1, 1)) / torch.tensor(cfg["std"]).view(1, 3, 1, 1)
maps = {"before fine-tuning": cls_attention(start, normalised),
        "after full fine-tuning": cls_attention(finetuned("full").model.cpu(), normalised)}
fig, axes = plt.subplots(3, 4, figsize=(12, 9))
for ax, picture in zip(axes[0], pictures):
    ax.imshow(picture.permute(1, 2, 0))
for row, (label, attention) in zip(axes[1:], maps.items()):
    for ax, att in zip(row, attention):
        ax.imshow(att, cmap="inferno")
        ax.set_title(label, fontsize=9)
for ax in axes.flat:
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# ### The same with Hugging Face transformers
# The curriculum fine-tunes with timm *and* Hugging Face. The same `finetune` runs on transformers'
# `ViTForImageClassification`: `vitcourse.models.HFImageClassifier` gives it timm's interface
# (`get_classifier()` names its `classifier` head, so your `prepare_finetune` freezes the rest;
# `reset_classifier`; the normalisation its checkpoint expects), and everything else is the same
# data, the same budget (epochs, batch size, learning rates, warmup and cosine, label smoothing,
# clipping) and the same printed line. At FULL scale it loads `google/vit-base-patch16-224` (the
# original ViT-B/16: ImageNet-21k pretraining, ImageNet-1k fine-tuning; timm's checkpoint above is
# the later AugReg one, so the two rows compare two checkpoints as well as two libraries); at SMOKE
# scale a small random-init stand-in of it, which says nothing about transfer.

# %%
for mode in ("linear_probe", "full"):
    finetuned(mode, library="transformers")
print(f"{'library':<13} {'mode':<13} {'test acc':>8}")
for (library, mode), result in FINETUNED.items():
    print(f"{library:<13} {mode:<13} {result.test_acc:>8.4f}")

# %% [markdown]
# ### Why transfer beats training from scratch
#
# A ViT trained from scratch must learn *everything* from the training set: that nearby pixels
# belong together, edges, textures, parts, and which position embeddings make a grid. On digits a
# small ViT manages because the task is easy and the images are tiny; on CIFAR-10 the recipe needs
# heavy augmentation and 200 epochs for its 90 % goal; on Food-101 (101 fine-grained classes, 750
# training images each, large variation within a class) the data are far too few for that.
#
# A pretrained ViT-B/16 arrives with features learned from about 14 million ImageNet-21k images:
# its early layers respond to edges, colours and textures, its later ones to parts and objects. A
# **linear probe** measures how much of Food-101 those features already separate: the head only
# has to place 101 hyperplanes in a 768-dimensional space, no gradient flows through the backbone,
# and 77,669 trainable numbers can hardly overfit 75,750 images. **Full fine-tuning** also moves
# the features towards the dishes' fine distinctions (the attention maps above show where the model
# looks afterwards), at the cost of gradients through all 86 M parameters and the risk of
# destroying what pretraining learned with too large a learning rate (hence 1e-4, ten times below
# the probe's). Compare the two rows of your FULL run: the gap between them is what adapting the
# features is worth on this dataset.
#
# When to use which: a linear probe when the new data are few or compute is short, or to measure a
# representation; full fine-tuning when there are thousands of labelled images per few classes and
# a GPU; training from scratch only when the data are plentiful or unlike anything pretrained
# (and then a CNN teacher, or a hybrid model, helps a ViT along).

# %%
print(f"notebook ran in {time.monotonic() - NOTEBOOK_START:.0f} s at {SCALE.value.upper()} scale")

# %% [markdown]
# ## 9. Reflect
#
# Not graded; Week 4 assumes you can answer them.
#
# 1. Remove the warmup (W = 0) and train the digits ViT with a learning rate of 1e-2. What happens
#    to the first epochs' loss? Why does a CNN with BatchNorm tolerate this better?
# 2. Why must CutMix recompute λ from the clipped box? What would the model learn if the labels
#    said 50/50 while only 30 % of the pixels came from the second image?
# 3. Hinton's T² factor: derive the 1/T² shrinkage of the soft term's gradient for large T.
# 4. Your checkpoint saves the random generators. Which three sources of randomness in `fit` would
#    make a resumed run diverge without them? Would a *mid-epoch* checkpoint resume exactly?
# 5. Why does hard distillation use a separate token and head instead of a second loss on the CLS
#    head? What does the model return at test time, and why?
# 6. A linear probe of ViT-B/16 trains about 0.1 % of the parameters. Which is faster per step, and
#    by how much: the probe or full fine-tuning? (Hint: the forward pass is the same.)
