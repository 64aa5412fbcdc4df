"""Week 3 hidden tests: the schedule, parameter groups, Mixup/CutMix, distillation, the loop, fine-tuning.

Every call to the student's code goes through the ``student`` sandbox and comes back as plain arrays;
the references are computed here: from the written formula, from timm 1.0.31 where timm has the
operation (``CosineLRScheduler``, ``param_groups_weight_decay``, ``VisionTransformerDistilled``), and
from PyTorch (``F.cross_entropy(label_smoothing=...)``, ``F.kl_div``). Mixup/CutMix are checked
through invariants that hold for any random draw: with image i = the one-hot colour i and label i,
a correct mix has targets equal to the images' mean colours.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vitgrade.hidden import assert_close, rand, state


def scalar(value, what):
    """A loss as a float: one number (a 0-d tensor comes back as an array of one element)."""
    array = np.asarray(value, dtype=np.float64)
    if array.size != 1:
        raise AssertionError(f"{what}: expected one number (a 0-d tensor), got shape {tuple(array.shape)}")
    return float(array.reshape(()))


def assert_scalar(value, want, what, atol=1e-5, rtol=1e-4):
    assert_close(np.asarray(scalar(value, what)), np.asarray(float(want)), what, atol=atol, rtol=rtol)


# ================================================================ Task 3.1: the schedule
def reference_lr(step, total, warmup, base, floor):
    if step < warmup:
        return base * step / warmup
    progress = min(1.0, (step - warmup) / (total - warmup))
    return floor + (base - floor) * 0.5 * (1 + math.cos(math.pi * progress))


SCHEDULES = [dict(total_steps=100, warmup_steps=10, base_lr=3e-3, min_lr=1e-5),
             dict(total_steps=37, warmup_steps=0, base_lr=1.0, min_lr=0.0),
             dict(total_steps=50, warmup_steps=7, base_lr=0.5, min_lr=0.05)]


@pytest.mark.task("3.1", points=2)
def test_schedule_corners(student):
    cfg = SCHEDULES[0]
    corners = [(0, 0.0, "step 0 of the warmup"), (5, 1.5e-3, "half-way through the warmup"),
               (10, 3e-3, "the end of the warmup (the peak)"),
               (55, reference_lr(55, 100, 10, 3e-3, 1e-5), "half-way through the decay"),
               (100, 1e-5, "the last step (the floor)"), (130, 1e-5, "after the last step")]
    got = student.probe("schedule", steps=[s for s, _, _ in corners], cfg=cfg)
    for value, (step, want, what) in zip(got, corners):
        if not math.isclose(value, want, rel_tol=1e-9, abs_tol=1e-12):
            raise AssertionError(f"warmup_cosine at {what} (step {step} of 100, warmup 10, base 3e-3, min 1e-5) "
                                 f"is {value}; expected {want}")
    first = student.fn("schedules.warmup_cosine", 0, **SCHEDULES[1])
    if not math.isclose(first, 1.0):
        raise AssertionError(f"with warmup_steps=0 the schedule starts at base_lr; got {first} at step 0")


@pytest.mark.task("3.1", points=2)
@pytest.mark.parametrize("cfg", SCHEDULES, ids=lambda c: f"S{c['total_steps']}-W{c['warmup_steps']}")
def test_schedule_whole_curve(student, cfg):
    got = student.probe("schedule", steps=list(range(cfg["total_steps"] + 3)), cfg=cfg)
    want = [reference_lr(s, cfg["total_steps"], cfg["warmup_steps"], cfg["base_lr"], cfg["min_lr"])
            for s in range(cfg["total_steps"] + 3)]
    assert_close(np.array(got), np.array(want), f"warmup_cosine over every step of {cfg}", atol=1e-12, rtol=1e-9)


@pytest.mark.task("3.1", points=1)
def test_schedule_rejects_bad_arguments(student):
    student.raises(ValueError, "schedules.warmup_cosine", 5, 10, 10)
    student.raises(ValueError, "schedules.warmup_cosine", 5, 10, 20)
    student.raises(ValueError, "schedules.warmup_cosine", -1, 10, 2)


@pytest.mark.task("3.1", points=2)
def test_schedule_matches_timm_cosine_scheduler(student):
    from timm.scheduler import CosineLRScheduler

    total, warmup, base, floor = 60, 8, 2e-3, 2e-5
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
    sched = CosineLRScheduler(optimizer, t_initial=total - warmup, lr_min=floor, warmup_t=warmup, warmup_lr_init=0.0,
                              warmup_prefix=True, cycle_limit=1, t_in_epochs=False)
    want = []
    for step in range(total + 2):
        sched.step_update(step)  # per-update scheduling (t_in_epochs=False): sets the optimizer's lr
        want.append(optimizer.param_groups[0]["lr"])
    cfg = dict(total_steps=total, warmup_steps=warmup, base_lr=base, min_lr=floor)
    got = student.probe("schedule", steps=list(range(total + 2)), cfg=cfg)
    assert_close(np.array(got), np.array(want), "warmup_cosine vs timm's CosineLRScheduler (warmup_prefix=True, "
                 "warmup_lr_init=0, t_initial = total - warmup)", atol=1e-12, rtol=1e-9)


# ================================================================ Task 3.2: parameter groups
def expected_groups(model, weight_decay, frozen=(), names=("pos_embed", "cls_token", "dist_token")):
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if name in frozen:
            continue
        if param.ndim <= 1 or name.endswith(".bias") or name.rsplit(".", 1)[-1] in names:
            no_decay.append(name)
        else:
            decay.append(name)
    return [g for g in ({"names": no_decay, "weight_decay": 0.0}, {"names": decay, "weight_decay": weight_decay})
            if g["names"]]


def check_groups(got, want, what):
    plain = [{"names": list(g["names"]), "weight_decay": g["weight_decay"]} for g in got]
    if plain != want:
        lines = [f"  group {i}: weight_decay {g['weight_decay']}: {g['names']}" for i, g in enumerate(plain)]
        wanted = [f"  group {i}: weight_decay {g['weight_decay']}: {g['names']}" for i, g in enumerate(want)]
        raise AssertionError(f"param_groups of {what}:\n" + "\n".join(lines) + "\nexpected:\n" + "\n".join(wanted))
    for group in got:
        if "params" not in group["keys"]:
            raise AssertionError("each group is a dict with the key 'params' (what torch.optim expects)")


def reference_probes():
    """This week's probes.py, imported here only for its model builders (names and shapes)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("week03_probe_models", Path(__file__).with_name("probes.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def probe_model(kind):
    """The same model the probe builds, here (names only matter)."""
    return reference_probes().build_for_groups(kind)


@pytest.mark.task("3.2", points=2)
@pytest.mark.parametrize("kind", ["vit", "deit"])
def test_param_groups_match_timm(student, kind):
    from timm.optim import param_groups_weight_decay

    model = probe_model(kind)
    names = {id(p): n for n, p in model.named_parameters()}
    ref = param_groups_weight_decay(model, 0.05, no_weight_decay_list=("pos_embed", "cls_token", "dist_token"))
    want = [{"names": [names[id(p)] for p in g["params"]], "weight_decay": g["weight_decay"]} for g in ref]
    check_groups(student.probe("groups_by_name", kind=kind, weight_decay=0.05), want,
                 f"a {'ViT' if kind == 'vit' else 'distilled DeiT'} (vs timm's param_groups_weight_decay)")


@pytest.mark.task("3.2", points=2)
@pytest.mark.parametrize("kind", ["nested", "resnet", "nobias"])
def test_param_groups_by_name(student, kind):
    """Names are matched on their last part (encoder.pos_embed); conv kernels decay, BatchNorm does not;
    an empty group is left out."""
    model = probe_model(kind)
    check_groups(student.probe("groups_by_name", kind=kind, weight_decay=0.1), expected_groups(model, 0.1),
                 {"nested": "a module with encoder.pos_embed, encoder.cls_token, a conv, a BatchNorm, a 2-d and a "
                  "0-d parameter", "resnet": "a small ResNet", "nobias": "nn.Linear(3, 4, bias=False)"}[kind])


@pytest.mark.task("3.2", points=1)
def test_param_groups_skip_frozen(student):
    frozen = ["patch_embed.proj.weight", "patch_embed.proj.bias", "cls_token", "blocks.0.attn.qkv.weight"]
    model = probe_model("vit")
    check_groups(student.probe("groups_by_name", kind="vit", weight_decay=0.05, freeze=frozen),
                 expected_groups(model, 0.05, frozen), "a ViT with four frozen parameters (they belong to no group)")


# ================================================================ Task 3.3: Mixup, CutMix, soft targets
def colour_batch(b, h, w):
    """Image i is the one-hot colour i (B channels), label i: a correct mix has targets = mean colours."""
    images = torch.zeros(b, b, h, w)
    images[torch.arange(b), torch.arange(b)] = 1.0
    return images, torch.arange(b)


def check_targets_follow_pixels(mixed, targets, smoothing, what):
    mixed, targets = np.asarray(mixed, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    k = targets.shape[1]
    assert_close(targets.sum(-1), np.ones(len(targets)), f"{what}: every target row sums to 1", atol=1e-5)
    share = mixed.mean(axis=(2, 3))  # (B, K): how much of each source image the pixels hold
    assert_close(targets, (1 - smoothing) * share + smoothing / k,
                 f"{what}: the targets must mix the labels in the same proportion as the pixels, with the same "
                 "permutation (image i holds a share of image j exactly when target i holds that share of label j)",
                 atol=1e-5)


@pytest.mark.task("3.3", points=1)
def test_one_hot_smoothing(student):
    labels = torch.tensor([2, 0, 4, 4])
    got = student.fn("augment.one_hot", labels, 5, 0.1)
    want = np.full((4, 5), 0.02)
    want[np.arange(4), labels.numpy()] = 0.92
    assert_close(got, want, "one_hot(labels, 5, smoothing=0.1): 1 - 0.1 + 0.1/5 on the label, 0.1/5 elsewhere")
    assert_close(student.fn("augment.one_hot", labels, 5), np.eye(5)[labels.numpy()], "one_hot without smoothing")


@pytest.mark.task("3.3", points=2)
def test_soft_target_cross_entropy(student):
    logits = rand(6, 5, seed=1) * 3
    labels = torch.tensor([0, 4, 2, 2, 1, 3])
    smooth = torch.full((6, 5), 0.1 / 5)
    smooth[torch.arange(6), labels] += 0.9
    got = student.fn("augment.soft_target_cross_entropy", logits, smooth)
    assert_scalar(got, F.cross_entropy(logits, labels, label_smoothing=0.1),
                 "soft_target_cross_entropy(logits, smoothed one-hot) vs F.cross_entropy(label_smoothing=0.1)")
    soft = torch.softmax(rand(6, 5, seed=2), -1)
    want = -(soft * logits.log_softmax(-1)).sum(-1).mean()
    assert_scalar(student.fn("augment.soft_target_cross_entropy", logits, soft), want,
                 "soft_target_cross_entropy against arbitrary soft targets (mean over the batch of the per-row sum)")


@pytest.mark.task("3.3", points=1)
def test_mixup_formula(student):
    images, targets = rand(4, 3, 5, 6, seed=3), torch.softmax(rand(4, 7, seed=4), -1)
    perm = torch.tensor([2, 0, 3, 1])
    mixed, mixed_targets = student.fn("augment.mixup", images, targets, 0.3, perm)
    assert_close(mixed, (0.3 * images + 0.7 * images[perm]).numpy(), "mixup images: lam * x + (1 - lam) * x[perm]")
    assert_close(mixed_targets, (0.3 * targets + 0.7 * targets[perm]).numpy(),
                 "mixup targets: lam * y + (1 - lam) * y[perm], the same lam and perm as the images")


BOX_LAMS = [0.3, 0.5, 0.75, 0.9, 0.05] * 8
BOX_SEEDS = list(range(40))


@pytest.mark.task("3.3", points=2)
@pytest.mark.parametrize("height,width", [(32, 32), (24, 40)])
def test_cutmix_box_geometry(student, height, width):
    boxes = student.probe("cutmix_boxes", height=height, width=width, lams=BOX_LAMS, seeds=BOX_SEEDS)
    clipped = 0
    for lam, (top, bottom, left, right) in zip(BOX_LAMS, boxes):
        cut_h, cut_w = int(height * math.sqrt(1 - lam)), int(width * math.sqrt(1 - lam))
        if not (0 <= top <= bottom <= height and 0 <= left <= right <= width):
            raise AssertionError(f"cutmix_box({height}, {width}, lam={lam}) = {(top, bottom, left, right)} is not "
                                 "inside the image")
        for lo, hi, cut, size, axis in ((top, bottom, cut_h, height, "rows"), (left, right, cut_w, width, "columns")):
            if 0 < lo and hi < size and hi - lo != cut:
                raise AssertionError(f"cutmix_box({height}, {width}, lam={lam}): an unclipped box spans {hi - lo} "
                                     f"{axis}; expected int({size} * sqrt(1 - lam)) = {cut}, so that its area is "
                                     "(1 - lam) of the image")
            if hi - lo > cut:
                raise AssertionError(f"cutmix_box({height}, {width}, lam={lam}) spans {hi - lo} {axis}, more than "
                                     f"int({size} * sqrt(1 - lam)) = {cut}")
            clipped += (lo == 0 or hi == size) and hi - lo < cut
    if clipped == 0:
        raise AssertionError("no box was ever clipped at the border in 40 draws: the centre must be uniform over the "
                             "whole image, not kept away from the border")


@pytest.mark.task("3.3", points=2)
def test_cutmix_pastes_one_box_and_mixes_targets_by_area(student):
    images, labels = colour_batch(5, 12, 16)
    targets = torch.eye(5)[labels]
    perm = torch.tensor([3, 4, 0, 2, 1])
    lams, seeds = [0.3, 0.6, 0.9, 0.5], [0, 1, 2, 3]
    for lam, (mixed, mixed_targets, lam_used, untouched) in zip(
            lams, student.probe("cutmix_calls", images=images, targets=targets, lams=lams, perm=perm, seeds=seeds)):
        mixed = np.asarray(mixed)
        changed = (np.abs(mixed - images.numpy()).sum(axis=1) > 0)  # (B, H, W): pixels that came from elsewhere
        box = changed[0]
        if not all(np.array_equal(c, box) for c in changed):
            raise AssertionError("cutmix: the same box for every image of the batch")
        rows, cols = np.nonzero(box.any(1))[0], np.nonzero(box.any(0))[0]
        area = box.sum()
        if area and area != len(rows) * len(cols):
            raise AssertionError("cutmix: the pasted region must be one rectangle")
        assert_close(mixed, np.where(box, images.numpy()[perm.numpy()], images.numpy()),
                     f"cutmix(lam={lam}): inside the box the pixels of image perm[i], outside image i's own")
        if not math.isclose(lam_used, 1 - area / (12 * 16), abs_tol=1e-9):
            raise AssertionError(f"cutmix(lam={lam}) returned lam {lam_used:.4f}, but the box covers {area} of "
                                 f"{12 * 16} pixels: lam must be recomputed as 1 - {area}/{12 * 16} = "
                                 f"{1 - area / 192:.4f} (the box is clipped at the border)")
        check_targets_follow_pixels(mixed, mixed_targets, 0.0, f"cutmix(lam={lam})")
        if not untouched:
            raise AssertionError("cutmix must not modify its input images or targets")


@pytest.mark.task("3.3", points=3)
@pytest.mark.parametrize("mode", ["mixup", "cutmix", "both"])
def test_mixup_cutmix_one_permutation(student, mode):
    alphas = {"mixup": (0.8, 0.0), "cutmix": (0.0, 1.0), "both": (0.8, 1.0)}[mode]
    images, labels = colour_batch(6, 8, 10)
    init = dict(num_classes=6, mixup_alpha=alphas[0], cutmix_alpha=alphas[1], label_smoothing=0.1)
    seeds = list(range(12))
    kinds = set()
    for seed, (mixed, targets) in zip(seeds, student.probe("mix_batches", init=init, images=images, labels=labels,
                                                           seeds=seeds)):
        check_targets_follow_pixels(mixed, targets, 0.1, f"MixupCutmix({mode}, label_smoothing=0.1), seed {seed}")
        values = np.asarray(mixed)
        pure = np.all(np.isclose(values, 0) | np.isclose(values, 1))
        kinds.add("cutmix" if pure else "mixup")
    if mode == "both" and kinds != {"mixup", "cutmix"}:
        raise AssertionError(f"MixupCutmix with both alphas > 0 and switch_prob 0.5 produced only {kinds} batches "
                             "in 12 draws")
    if mode != "both" and kinds != {mode}:
        raise AssertionError(f"MixupCutmix with only {mode} on produced {kinds} batches")


@pytest.mark.task("3.3", points=1)
def test_mixup_cutmix_prob_zero_only_smooths(student):
    images, labels = colour_batch(4, 6, 6)
    (mixed, targets), = student.probe("mix_batches", init=dict(num_classes=4, prob=0.0, label_smoothing=0.2),
                                      images=images, labels=labels, seeds=[0])
    assert_close(mixed, images.numpy(), "MixupCutmix(prob=0): the images pass through")
    assert_close(targets, 0.8 * np.eye(4) + 0.05, "MixupCutmix(prob=0): the targets are only smoothed")


# ================================================================ Task 3.4: distillation
def reference_soft(student_logits, teacher_logits, t):
    s = torch.log_softmax(student_logits.double() / t, -1)
    p = torch.softmax(teacher_logits.double() / t, -1)
    return float((p * (p.log() - s)).sum(-1).mean() * t * t)


@pytest.mark.task("3.4", points=2)
@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_soft_distillation_formula(student, temperature):
    s, t = rand(5, 7, seed=10) * 2, rand(5, 7, seed=11) * 2
    got = student.fn("distill.soft_distillation_loss", s, t, temperature)
    assert_scalar(got, reference_soft(s, t, temperature),
                 f"soft_distillation_loss at T={temperature}: T^2 * KL(softmax(teacher/T) || softmax(student/T)), "
                 "summed over classes and averaged over the batch (batchmean)", atol=1e-6)


@pytest.mark.task("3.4", points=2)
def test_soft_distillation_t_squared_keeps_gradients_comparable(student):
    s, t = rand(8, 10, seed=12) * 2, rand(8, 10, seed=13) * 2
    res = student.probe("distillation_grads", student_logits=s, teacher_logits=t, temperatures=[8.0, 16.0])
    norms = [float(np.linalg.norm(g)) for g in res["student_grad"]]
    ratio = norms[0] / max(norms[1], 1e-30)
    if not 0.9 < ratio < 1.1:
        raise AssertionError(f"the gradient norm w.r.t. the student's logits at T=8 is {ratio:.2f} times that at "
                             "T=16; with the T^2 factor it stays near 1 (without it, about 4)")
    if any(np.abs(g).max() > 0 for g in res["teacher_grad"]):
        raise AssertionError("soft_distillation_loss must treat the teacher's logits as constants (detach them)")


@pytest.mark.task("3.4", points=1)
def test_hard_distillation_formula(student):
    s, t = rand(6, 5, seed=14), rand(6, 5, seed=15)
    got = student.fn("distill.hard_distillation_loss", s, t)
    assert_scalar(got, F.cross_entropy(s, t.argmax(-1)), "hard_distillation_loss: CE(student, teacher.argmax)")


@pytest.mark.task("3.4", points=2)
def test_distillation_loss_combination(student):
    cls, dist, teacher = rand(6, 5, seed=16), rand(6, 5, seed=17), rand(6, 5, seed=18) * 3
    labels = torch.tensor([0, 1, 4, 2, 2, 3])
    soft_targets = torch.softmax(rand(6, 5, seed=19), -1)
    base = F.cross_entropy(cls, labels)
    soft_base = -(soft_targets * cls.log_softmax(-1)).sum(-1).mean()
    hard, soft = F.cross_entropy(dist, teacher.argmax(-1)), reference_soft(dist, teacher, 3.0)
    cases = [(dict(kind="hard", alpha=0.5), labels, 0.5 * base + 0.5 * hard),
             (dict(kind="soft", alpha=0.3, temperature=3.0), labels, 0.7 * base + 0.3 * soft),
             (dict(kind="hard", alpha=0.25), soft_targets, 0.75 * soft_base + 0.25 * hard)]
    for kw, targets, want in cases:
        got = student.fn("distill.distillation_loss", (cls, dist), teacher, targets, **kw)
        kind = "soft targets" if targets.ndim == 2 else "labels"
        assert_scalar(got, want, f"distillation_loss((cls, dist), teacher, {kind}, {kw}): "
                     "(1 - alpha) * CE(cls, targets) + alpha * teacher term on dist", atol=1e-6)
    plain = student.fn("distill.distillation_loss", cls, teacher, labels, kind="soft", alpha=0.5, temperature=2.0)
    assert_scalar(plain, 0.5 * float(base) + 0.5 * reference_soft(cls, teacher, 2.0),
                 "distillation_loss of a plain model's logits (used for both terms, Hinton's setting)", atol=1e-6)
    student.raises(ValueError, "distill.distillation_loss", cls, teacher, labels, kind="medium")


DEIT = dict(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, mlp_ratio=2.0, num_classes=10)


def timm_deit(seed=0, **overrides):
    from timm.models.deit import VisionTransformerDistilled

    cfg = dict(DEIT, **overrides)
    torch.manual_seed(seed)
    model = VisionTransformerDistilled(qkv_bias=True, class_token=True, global_pool="token", **cfg)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, param in model.named_parameters():
            mean, spread = (1.0, 0.1) if key.endswith("weight") and "norm" in key else (0.0, 0.2)
            param.copy_(mean + spread * torch.randn(param.shape, generator=gen))
    return model, cfg




@pytest.mark.task("3.4", points=1)
def test_distilled_vit_parameters_and_init(student):
    facts = student.probe("distilled_vit_facts", init=dict(DEIT, embed_dim=384, num_heads=6, depth=1))
    shapes = facts["shapes"]
    for name, shape in [("dist_token", [1, 1, 384]), ("pos_embed", [1, 16 + 2, 384]), ("head_dist.weight", [10, 384])]:
        if shapes.get(name) != shape:
            raise AssertionError(f"DistilledVisionTransformer.{name} has shape {shapes.get(name)}; expected {shape}")
    for name in ("dist_token", "pos_embed"):
        if not 0.012 < facts[f"{name}_std"] < 0.025:
            raise AssertionError(f"{name} is initialised with std {facts[f'{name}_std']:.4f}; expected trunc-normal "
                                 "std 0.02")
    if not 0.012 < facts["head_dist_weight_std"] < 0.025 or facts["head_dist_bias_max"] > 0:
        raise AssertionError("head_dist is initialised like head: trunc-normal std 0.02 weights, zero bias")
    if not all(facts["trainable"].values()):
        raise AssertionError("every parameter of the distilled ViT is trainable")
    student.raises(ValueError, "distill.DistilledVisionTransformer", pos_embed="sincos2d", **DEIT)


@pytest.mark.task("3.4", points=3)
@pytest.mark.parametrize("img_size", [32, (32, 48)], ids=["32x32", "32x48"])
def test_distilled_vit_matches_timm(student, img_size):
    ref, cfg = timm_deit(seed=1, img_size=img_size)
    h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
    images = rand(3, 3, h, w, seed=20)
    with torch.no_grad():
        want_eval = ref.eval()(images)
        ref.set_distilled_training(True)
        want_cls, want_dist = ref.train()(images)
    got_eval = student.module("distill.DistilledVisionTransformer", init=cfg, state=state(ref))(images)
    assert_close(got_eval, want_eval.numpy(), f"eval-mode output of a {h}x{w} distilled ViT with timm's weights: "
                 "the mean of the two heads' logits", atol=1e-5)
    got_train = student.module("distill.DistilledVisionTransformer", init=cfg, state=state(ref), train=True)(images)
    if not isinstance(got_train, tuple) or len(got_train) != 2:
        raise AssertionError(f"in training mode the distilled ViT returns (cls_logits, dist_logits); got "
                             f"{type(got_train).__name__}")
    assert_close(got_train[0], want_cls.numpy(), "training-mode cls logits vs timm (CLS token, head)", atol=1e-5)
    assert_close(got_train[1], want_dist.numpy(), "training-mode dist logits vs timm (distillation token, head_dist)",
                 atol=1e-5)


@pytest.mark.task("3.4", points=1)
def test_distilled_vit_other_resolution(student):
    from timm.layers import resample_abs_pos_embed
    from timm.models.deit import VisionTransformerDistilled

    ref, cfg = timm_deit(seed=2)
    moved = state(ref)
    moved["pos_embed"] = resample_abs_pos_embed(moved["pos_embed"], [6, 6], [4, 4], num_prefix_tokens=2,
                                                antialias=False, interpolation="bilinear")
    big = VisionTransformerDistilled(qkv_bias=True, class_token=True, global_pool="token", **dict(cfg, img_size=48))
    big.load_state_dict(moved)
    images = rand(2, 3, 48, 48, seed=21)
    with torch.no_grad():
        want = big.eval()(images)
    got = student.module("distill.DistilledVisionTransformer", init=cfg, state=state(ref))(images)
    assert_close(got, want.numpy(), "a distilled ViT built for 32x32 on 48x48 images: the position table resized "
                 "with both prefix rows (CLS, distillation) kept apart", atol=1e-5)


# ================================================================ Task 3.5: the loop
LINEAR = dict(weight=rand(3, 4, seed=30) * 2, bias=rand(3, seed=31))
BATCHES = [(rand(5, 4, seed=32) * 3, torch.tensor([0, 2, 1, 1, 0])), (rand(3, 4, seed=33) * 3, torch.tensor([2, 2, 0]))]


def reference_sgd(batches, clip=None, lr=1.0, decay=False):
    model = torch.nn.Linear(4, 3)
    with torch.no_grad():
        model.weight.copy_(LINEAR["weight"])
        model.bias.copy_(LINEAR["bias"])
    losses, correct, seen = [], 0, 0
    for i, (x, y) in enumerate(batches):
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        model.zero_grad()
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * (1.0 / (1 + i) if decay else 1.0) * p.grad
        losses.append(float(loss))
        correct += int((logits.argmax(-1) == y).sum())
        seen += len(y)
    total = sum(loss * len(y) for loss, (_, y) in zip(losses, batches)) / seen
    return model, losses, total, correct / seen


@pytest.mark.task("3.5", points=2)
@pytest.mark.parametrize("clip", [None, 0.5])
def test_train_one_epoch_steps_and_clips(student, clip):
    res = student.probe("one_sgd_epoch", batches=BATCHES, clip_grad=clip, amp=True, with_scheduler=True, **LINEAR)
    model, losses, mean_loss, acc = reference_sgd(BATCHES, clip=clip, decay=True)
    what = f"train_one_epoch of a linear model, SGD lr 1 decaying per step, clip_grad={clip}, amp=True on the CPU"
    assert_close(res["losses"], np.array(losses), f"{what}: the loss of each step")
    assert_close(res["weight"], model.weight.detach().numpy(), f"{what}: the weights after the epoch (gradients "
                 "clipped to global norm clip_grad after backward, before the step; the scheduler stepped after every "
                 "step)")
    assert_close(res["bias"], model.bias.detach().numpy(), f"{what}: the bias after the epoch")
    result = res["result"]
    if not math.isclose(result.get("loss", math.nan), mean_loss, rel_tol=1e-5):
        raise AssertionError(f"{what}: returned loss {result.get('loss')}; expected the mean per image {mean_loss:.6f} "
                             "(batches of 5 and 3 images weighted by their size)")
    if not math.isclose(result.get("acc", math.nan), acc) or result.get("step") != 2 or result.get("images") != 8:
        raise AssertionError(f"{what}: returned {result}; expected acc {acc}, step 2, images 8")
    if not res["training"]:
        raise AssertionError("train_one_epoch puts the model in training mode")


@pytest.mark.task("3.5", points=1)
def test_train_one_epoch_logs_loss_and_lr(student):
    batches = BATCHES * 3  # six steps
    res = student.probe("logged_epoch", batches=batches, step=10, log_every=2, **LINEAR)
    rows = res["rows"]
    if not rows or rows[0] != ["step", "tag", "value"]:
        raise AssertionError(f"metrics.csv must start with the header step,tag,value; it starts with {rows[:1]}")
    logged = {(int(s), t): float(v) for s, t, v in rows[1:]}
    want = {}
    for i in range(6):
        step = 10 + i + 1
        if step % 2 == 0:
            want[(step, "train/loss")] = res["losses"][i]
            want[(step, "train/lr")] = 0.5 / (1 + i)
    if set(logged) != set(want):
        raise AssertionError(f"with step=10 and log_every=2 the loop logs train/loss and train/lr after global steps "
                             f"12, 14, 16; the CSV has {sorted(logged)}")
    for key, value in want.items():
        if not math.isclose(logged[key], value, rel_tol=1e-5):
            raise AssertionError(f"logged {key[1]} at step {key[0]} is {logged[key]}; expected {value:.6g} "
                                 "(the loss of that step; the learning rate that step used, read before the scheduler "
                                 "steps)")
    if res["step"] != 16:
        raise AssertionError(f"the returned global step is {res['step']}; expected 10 + 6 = 16")


@pytest.mark.task("3.5", points=1)
def test_metric_logger_csv_and_tensorboard(student):
    entries = [(1, {"train/loss": 2.5, "train/lr": 0.01}), (2, {"train/loss": 2.0})]
    again = [(3, {"test/acc": 0.75})]
    res = student.probe("logger_files", entries=entries, reopen_entries=again)
    want_rows = [["step", "tag", "value"], ["1", "train/loss", 2.5], ["1", "train/lr", 0.01], ["2", "train/loss", 2.0],
                 ["3", "test/acc", 0.75]]
    rows = res["rows"]
    ok = len(rows) == len(want_rows) and rows[0] == want_rows[0] and all(
        r[:2] == w[:2] and math.isclose(float(r[2]), w[2]) for r, w in zip(rows[1:], want_rows[1:]))
    if not ok:
        raise AssertionError(f"metrics.csv after logging, closing and reopening (append, one header): {rows}; "
                             f"expected {want_rows}")
    scalars = {k: [tuple(x) for x in v] for k, v in res["scalars"].items()}
    want_tb = {"train/loss": [(1, 2.5), (2, 2.0)], "train/lr": [(1, 0.01)], "test/acc": [(3, 0.75)]}
    same = set(scalars) == set(want_tb) and all(
        [s for s, _ in scalars[k]] == [s for s, _ in v] and np.allclose([x for _, x in scalars[k]], [x for _, x in v])
        for k, v in want_tb.items())
    if not same:
        raise AssertionError(f"TensorBoard scalars read back: {scalars}; expected {want_tb}")


@pytest.mark.task("3.5", points=1)
def test_evaluate_per_image_in_eval_mode(student):
    res = student.probe("evaluate_linear", batches=BATCHES, dropout=0.5, **LINEAR)
    x = torch.cat([b[0] for b in BATCHES])
    y = torch.cat([b[1] for b in BATCHES])
    logits = x @ LINEAR["weight"].T + LINEAR["bias"]
    want = {"loss": float(F.cross_entropy(logits, y)), "acc": float((logits.argmax(-1) == y).float().mean())}
    got = res["result"]
    for key, value in want.items():
        if not math.isclose(got.get(key, math.nan), value, rel_tol=1e-5):
            raise AssertionError(f"evaluate on batches of 5 and 3 images, model with dropout 0.5: {key} = "
                                 f"{got.get(key)}; expected {value:.6f} (eval mode: no dropout; the mean per image, "
                                 "not per batch)")
    if res["training"]:
        raise AssertionError("evaluate leaves the model in eval mode")


@pytest.mark.task("3.5", points=2)
def test_overfits_a_tiny_batch(student):
    gen = torch.Generator().manual_seed(3)
    images, labels = torch.randn(16, 3, 16, 16, generator=gen), torch.randint(0, 4, (16,), generator=gen)
    res = student.probe("overfit", images=images, labels=labels, epochs=40)
    if res["acc"] < 1.0:
        raise AssertionError(f"a 4-token ViT trained with your train_one_epoch for 40 steps on one batch of 16 images "
                             f"reaches only {res['acc']:.0%} training accuracy (evaluate); it should memorise them all "
                             f"(losses: {np.round(res['history'][::10], 3).tolist()})")
    predicted = np.asarray(res["predicted"])
    if not math.isclose(res["acc"], float((predicted == labels.numpy()).mean())):
        raise AssertionError("evaluate's accuracy disagrees with the model's own predictions")


@pytest.mark.task("3.5", points=3)
def test_resume_gives_identical_losses(student):
    gen = torch.Generator().manual_seed(4)
    images, labels = torch.randn(12, 3, 16, 16, generator=gen), torch.randint(0, 4, (12,), generator=gen)
    res = student.probe("resume", images=images, labels=labels)
    assert_close(res["first_again"], np.array(res["first"]), "the same seed must give the same first epoch")
    if len(res["resumed"]) != len(res["straight"]):
        raise AssertionError(f"the resumed epoch took {len(res['resumed'])} steps, the straight one "
                             f"{len(res['straight'])}")
    assert_close(res["resumed"], np.array(res["straight"]),
                 "the losses of the epoch after load_checkpoint vs the same epoch of a run that never stopped "
                 "(a shuffled DataLoader, dropout and a random mix: restore the model, the optimizer, the scheduler "
                 "AND every random generator)", atol=1e-6, rtol=1e-6)
    if res["state"].get("epoch") != 1 or res["state"].get("step") != 3 or res["state"].get("note") != "hello":
        raise AssertionError(f"load_checkpoint returned {res['state']}; expected epoch 1, step 3 and the extra "
                             "keyword note='hello'")
    want_keys = ["epoch", "extra", "model", "optimizer", "rng", "scheduler", "step"]
    if res["keys"] != want_keys:
        raise AssertionError(f"the checkpoint file (read with weights_only=True) holds {res['keys']}; expected "
                             f"{want_keys}")


# ================================================================ Task 3.6: fine-tuning
def timm_model(kind):
    return reference_probes().build_timm(kind)


HEADS = {"vit": ("head",), "deit": ("head", "head_dist"), "resnet": ("fc",), "convnext": ("head.fc",)}


@pytest.mark.task("3.6", points=2)
@pytest.mark.parametrize("kind", list(HEADS))
def test_linear_probe_trains_only_the_classifier(student, kind):
    model = timm_model(kind)
    heads = HEADS[kind]
    want = [n for n, _ in model.named_parameters() if n.rsplit(".", 1)[0] in heads]
    params = dict(model.named_parameters())
    res = student.probe("finetune_state", kind=kind, modes=["linear_probe"])
    step = res["steps"][0]
    if step["trainable"] != want:
        raise AssertionError(f"linear probe of a timm {kind}: trainable {step['trainable']}; expected only the "
                             f"classifier's {want} (model.get_classifier())")
    trainable = sum(params[n].numel() for n in want)
    total = sum(p.numel() for p in model.parameters())
    if tuple(step["count"]) != (trainable, total):
        raise AssertionError(f"count_parameters after the linear probe of a {kind}: {tuple(step['count'])}; expected "
                             f"(trainable, total) = {(trainable, total)}")
    if not step["returned_model"]:
        raise AssertionError("prepare_finetune returns the model it changed")


@pytest.mark.task("3.6", points=1)
def test_full_finetuning_unfreezes_everything(student):
    model = timm_model("vit")
    names = [n for n, _ in model.named_parameters()]
    total = sum(p.numel() for p in model.parameters())
    res = student.probe("finetune_state", kind="vit", modes=["linear_probe", "full"],
                        freeze_first=["cls_token", "blocks.0.attn.qkv.weight"])
    step = res["steps"][1]
    if step["trainable"] != names or tuple(step["count"]) != (total, total):
        raise AssertionError(f"prepare_finetune(model, 'full') after a linear probe (and with some parameters frozen "
                             f"before): trainable {len(step['trainable'])} of {len(names)} parameters, count "
                             f"{tuple(step['count'])}; expected every parameter trainable, ({total}, {total})")
    raised = student.probe("finetune_bad_mode", kind="vit", mode="partial")
    if "builtins.ValueError" not in raised:
        raise AssertionError(f"prepare_finetune(model, 'partial') must raise ValueError; it raised "
                             f"{raised[0] if raised else 'nothing'}")


@pytest.mark.task("3.6", points=1)
def test_count_parameters_with_frozen_and_shared(student):
    got = student.probe("count_shared", freeze=["extra.weight"])
    # embed.weight (7x3, tied with decoder.weight, counted once) + decoder.bias 7 + extra 3x2 + 2
    want = (21 + 7 + 2, 21 + 7 + 6 + 2)
    if tuple(got) != want:
        raise AssertionError(f"count_parameters of a model with a tied weight (counted once) and extra.weight frozen: "
                             f"{tuple(got)}; expected {want}")
