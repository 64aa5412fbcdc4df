"""Week 3 hidden tests: the schedule, parameter groups, Mixup/CutMix, distillation, the loop, fine-tuning.

Every call to the student's code goes through the ``student`` sandbox and comes back as plain arrays;
the references are computed here: from the written formula, from timm 1.0.31 where timm has the
operation (``CosineLRScheduler``, ``param_groups_weight_decay``, ``VisionTransformerDistilled``), and
from PyTorch (``F.cross_entropy(label_smoothing=...)``, ``F.kl_div``). Mixup/CutMix are checked
through invariants that hold for any random draw: with image i = the one-hot colour i and label i,
a correct mix has targets equal to the images' mean colours.

Nothing the worker computes is a verdict. Where the student's code trains (the loop, overfitting,
resuming), the probes hand back the parameters before and after, the losses and what the student's
functions returned; the tests here replay the same run with a reference loop (the same timm model,
the same seeds, one thread) and grade the student's outputs against that replay, and measure what
they grade (memorisation, exact resumption) from their own computation. Seeds, sizes and data are
drawn here for every grading, so nothing can be hard-wired. Promises that are invisible in plain
numbers (dtype, a graph, what happens to the inputs) are read from the facts the worker's wire
records with every tensor (``tensor_meta``).
"""

import contextlib
import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vitgrade.hidden import assert_close, rand, state, tensor_meta

DRAW = random.SystemRandom()  # seeds and sizes chosen by the judge, for every grading
IN_DTYPE = "course_probes.calls:call_in_dtype"  # a call with its tensors cast in the worker (bfloat16)
KEEPING_INPUTS = "course_probes.calls:call_keeping_inputs"  # a call, and its inputs as they are after it


def new_seed() -> int:
    return DRAW.randrange(1, 2**31 - 1)


@contextlib.contextmanager
def one_thread():
    """Replays run on one thread, as the worker does: the same kernels, the same rounding."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def meta_of(value, what):
    try:
        return tensor_meta(value)
    except KeyError:
        raise AssertionError(f"{what}: expected a torch tensor, got {type(value).__name__}") from None


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
    if not isinstance(first, float):
        raise AssertionError(f"warmup_cosine returns a Python float (LambdaLR multiplies the learning rate by it); "
                             f"it returned a {type(first).__name__}")
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
    an empty group is left out. On the nested module this is where the course's rule and timm's part:
    timm compares the whole dotted name with its list, so it would decay encoder.pos_embed and
    encoder.cls_token."""
    model = probe_model(kind)
    if kind == "nested":
        from timm.optim import param_groups_weight_decay

        names = {id(p): n for n, p in model.named_parameters()}
        timm_decayed = [names[id(p)] for p in param_groups_weight_decay(
            model, 0.1, no_weight_decay_list=("pos_embed", "cls_token", "dist_token"))[1]["params"]]
        assert "encoder.pos_embed" in timm_decayed, "test data check: timm's full-name rule decays encoder.pos_embed"
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


@pytest.mark.task("3.3", points=1)
@pytest.mark.parametrize("dtype", [torch.int32, torch.uint8])
def test_one_hot_takes_any_integer_labels_and_returns_float32(student, dtype):
    labels = torch.tensor([3, 0, 1, 3, 2], dtype=dtype)
    got = student.fn("augment.one_hot", labels, 4, 0.2)
    want = np.full((5, 4), 0.05)
    want[np.arange(5), labels.long().numpy()] = 0.85
    assert_close(got, want, f"one_hot of {dtype} labels (4 classes, smoothing 0.2): labels of any integer dtype "
                 "(a loader may yield int32 or uint8)")
    facts = meta_of(got, "one_hot")
    if facts["dtype"] != "torch.float32":
        raise AssertionError(f"one_hot returns float32 targets; it returned {facts['dtype']} for {dtype} labels")


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
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_soft_target_cross_entropy_in_float32(student, dtype):
    """Under autocast the logits arrive in bfloat16 (float16 with a scaler): the loss is computed, and
    returned, in float32."""
    logits = (rand(6, 9, seed=5) * 4).to(dtype)
    targets = torch.softmax(rand(6, 9, seed=6), -1).to(dtype)
    got = student.probe(IN_DTYPE, target="augment.soft_target_cross_entropy", args=[logits, targets],
                        dtype=str(dtype).removeprefix("torch."))
    want = -(targets.float() * logits.float().log_softmax(-1)).sum(-1).mean()
    assert_scalar(got, want, f"soft_target_cross_entropy of {dtype} logits and targets, computed in float32 "
                  "(log_softmax in bfloat16 loses about 3 significant digits)", atol=1e-6, rtol=1e-5)
    facts = meta_of(got, "soft_target_cross_entropy")
    if facts["dtype"] != "torch.float32":
        raise AssertionError(f"soft_target_cross_entropy of {dtype} inputs returned a {facts['dtype']} loss; "
                             "it is computed and returned in float32")


@pytest.mark.task("3.3", points=1)
def test_mixup_formula(student):
    images, targets = rand(4, 3, 5, 6, seed=3), torch.softmax(rand(4, 7, seed=4), -1)
    perm = torch.tensor([2, 0, 3, 1])
    res = student.probe(KEEPING_INPUTS, target="augment.mixup", args=[images, targets, 0.3, perm])
    mixed, mixed_targets = res["result"]
    assert_close(mixed, (0.3 * images + 0.7 * images[perm]).numpy(), "mixup images: lam * x + (1 - lam) * x[perm]")
    assert_close(mixed_targets, (0.3 * targets + 0.7 * targets[perm]).numpy(),
                 "mixup targets: lam * y + (1 - lam) * y[perm], the same lam and perm as the images")
    assert_close(res["inputs"][0], images, "the images after mixup(images, ...): mixup returns new tensors and "
                 "leaves its inputs unchanged", atol=0, rtol=0)
    assert_close(res["inputs"][1], targets, "the targets after mixup(..., targets, ...): unchanged", atol=0, rtol=0)


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
    lams = [0.3, 0.6, 0.9, 0.5]
    for lam in lams:
        res = student.probe(KEEPING_INPUTS, target="augment.cutmix", args=[images, targets, lam, perm],
                            seed=new_seed())
        mixed, mixed_targets, lam_used = res["result"]
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
        if not math.isclose(float(lam_used), 1 - area / (12 * 16), abs_tol=1e-9):
            raise AssertionError(f"cutmix(lam={lam}) returned lam {float(lam_used):.4f}, but the box covers {area} "
                                 f"of {12 * 16} pixels: lam must be recomputed as 1 - {area}/{12 * 16} = "
                                 f"{1 - area / 192:.4f} (the box is clipped at the border)")
        check_targets_follow_pixels(mixed, mixed_targets, 0.0, f"cutmix(lam={lam})")
        assert_close(res["inputs"][0], images, "the images after cutmix(images, ...): cutmix pastes into a copy and "
                     "leaves its inputs unchanged", atol=0, rtol=0)
        assert_close(res["inputs"][1], targets, "the targets after cutmix(..., targets, ...): unchanged",
                     atol=0, rtol=0)


def reference_box(height, width, lam, generator):
    """cutmix_box as its docstring writes it: the centre row, then the column, from ``generator``."""
    cut_h, cut_w = int(height * math.sqrt(1 - lam)), int(width * math.sqrt(1 - lam))
    cy = int(torch.randint(0, height, (1,), generator=generator))
    cx = int(torch.randint(0, width, (1,), generator=generator))
    return (max(cy - cut_h // 2, 0), min(cy + (cut_h + 1) // 2, height),
            max(cx - cut_w // 2, 0), min(cx + (cut_w + 1) // 2, width))


@pytest.mark.task("3.3", points=1)
def test_cutmix_box_draws_from_its_generator(student):
    """With a generator the box comes from it (a seeded generator gives the same box in every run) and the
    global generator is left alone."""
    lams, seeds, global_seed = [0.3, 0.7, 0.5, 0.9, 0.2, 0.6], [new_seed() for _ in range(6)], new_seed()
    res = student.probe("cutmix_boxes_from_generator", height=20, width=28, lams=lams, seeds=seeds,
                        global_seed=global_seed)
    want = [reference_box(20, 28, lam, torch.Generator().manual_seed(seed)) for lam, seed in zip(lams, seeds)]
    got = [tuple(int(v) for v in box) for box in res["boxes"]]
    if got != want:
        raise AssertionError(f"cutmix_box(20, 28, lam, generator) for generators seeded {seeds}: {got}; expected "
                             f"{want} (the centre row, then the column, each torch.randint(..., generator=generator))")
    untouched = torch.rand(4, generator=torch.Generator().manual_seed(global_seed))
    assert_close(res["global_next"], untouched, "the global generator after cutmix_box(..., generator=...): the "
                 "box must draw from the generator it is given, not from torch's global one", atol=0, rtol=0)


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


def reference_mix(init, images, labels, seed):
    """MixupCutmix as its docstring writes it, drawing from torch's global generator in the documented order:
    rand for prob (only when prob < 1), rand for the switch (only with both on), Beta's lambda, randperm, then
    the box's centre row and column."""
    k, smoothing = init["num_classes"], init.get("label_smoothing", 0.1)
    mixup_alpha, cutmix_alpha = init.get("mixup_alpha", 0.8), init.get("cutmix_alpha", 1.0)
    prob, switch = init.get("prob", 1.0), init.get("switch_prob", 0.5)
    torch.manual_seed(seed)
    targets = torch.full((len(labels), k), smoothing / k)
    targets[torch.arange(len(labels)), labels] += 1 - smoothing
    if prob < 1 and float(torch.rand(1)) >= prob:
        return images, targets
    use_cutmix = cutmix_alpha > 0
    if mixup_alpha > 0 and cutmix_alpha > 0:
        use_cutmix = float(torch.rand(1)) < switch
    alpha = cutmix_alpha if use_cutmix else mixup_alpha
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(images.shape[0])
    if not use_cutmix:
        return lam * images + (1 - lam) * images[perm], lam * targets + (1 - lam) * targets[perm]
    height, width = images.shape[-2:]
    top, bottom, left, right = reference_box(height, width, lam, None)
    mixed = images.clone()
    mixed[:, :, top:bottom, left:right] = images[perm][:, :, top:bottom, left:right]
    used = 1 - (bottom - top) * (right - left) / (height * width)
    return mixed, used * targets + (1 - used) * targets[perm]


@pytest.mark.task("3.3", points=1)
def test_mixup_cutmix_draws_in_the_documented_order(student):
    """The docstring fixes which random numbers a batch draws, in which order: a seeded run is then the same
    run everywhere, and a checkpoint of the generators resumes it exactly. Replayed here draw by draw."""
    images, labels = rand(5, 3, 8, 12, seed=7), torch.tensor([4, 0, 2, 2, 1])
    init = dict(num_classes=5, mixup_alpha=0.8, cutmix_alpha=1.0, prob=0.9, switch_prob=0.5, label_smoothing=0.1)
    seeds = [new_seed() for _ in range(8)]
    for seed, (mixed, targets) in zip(seeds, student.probe("mix_batches", init=init, images=images, labels=labels,
                                                           seeds=seeds)):
        want_images, want_targets = reference_mix(init, images, labels, seed)
        what = (f"MixupCutmix({init}) with torch seeded {seed}, replayed draw by draw (rand for prob, rand for the "
                "switch, Beta's lambda, randperm, the box's row and column)")
        assert_close(mixed, want_images, f"{what}: the images")
        assert_close(targets, want_targets, f"{what}: the targets")


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


@pytest.mark.task("3.4", points=1)
def test_distillation_losses_in_float32(student):
    """Under autocast the logits arrive in bfloat16: every distillation term is computed, and returned, in
    float32 (bfloat16's 8-bit mantissa would cost the KL term about three significant digits)."""
    s, t = (rand(6, 7, seed=40) * 3).bfloat16(), (rand(6, 7, seed=41) * 3).bfloat16()
    labels = torch.tensor([0, 6, 3, 3, 1, 2])
    combined = 0.5 * float(F.cross_entropy(s.float(), labels)) + 0.5 * reference_soft(s.flip(0).float(), t.float(), 2.0)
    cases = [("distill.soft_distillation_loss", (s, t, 2.0), {}, reference_soft(s.float(), t.float(), 2.0)),
             ("distill.hard_distillation_loss", (s, t), {}, float(F.cross_entropy(s.float(), t.float().argmax(-1)))),
             ("distill.distillation_loss", ((s, s.flip(0)), t, labels), dict(kind="soft", alpha=0.5, temperature=2.0),
              combined)]
    for target, args, kwargs, want in cases:
        got = student.probe(IN_DTYPE, target=target, args=list(args), kwargs=kwargs, dtype="bfloat16")
        assert_scalar(got, want, f"{target.split('.')[1]} of bfloat16 logits, computed in float32", atol=1e-5,
                      rtol=1e-5)
        facts = meta_of(got, target)
        if facts["dtype"] != "torch.float32":
            raise AssertionError(f"{target.split('.')[1]} of bfloat16 logits returned a {facts['dtype']} loss; it is "
                                 "computed and returned in float32")


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
    params = student.probe("distilled_vit_parameters", init=dict(DEIT, embed_dim=384, num_heads=6, depth=1),
                           init_seed=new_seed())
    shapes = {name: list(np.shape(value)) for name, value in params.items()}
    for name, shape in [("dist_token", [1, 1, 384]), ("pos_embed", [1, 16 + 2, 384]), ("head_dist.weight", [10, 384])]:
        if shapes.get(name) != shape:
            raise AssertionError(f"DistilledVisionTransformer.{name} has shape {shapes.get(name)}; expected {shape}")
    for name in ("dist_token", "pos_embed"):
        std = float(np.std(params[name]))
        if not 0.012 < std < 0.025:
            raise AssertionError(f"{name} is initialised with std {std:.4f}; expected trunc-normal std 0.02")
    weight_std, bias_max = float(np.std(params["head_dist.weight"])), float(np.abs(params["head_dist.bias"]).max())
    if not 0.012 < weight_std < 0.025 or bias_max > 0:
        raise AssertionError("head_dist is initialised like head: trunc-normal std 0.02 weights, zero bias")
    frozen = [name for name, value in params.items() if not meta_of(value, name)["requires_grad"]]
    if frozen:
        raise AssertionError(f"every parameter of the distilled ViT is trainable; {frozen} do not require grad")
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


def replay_dropout_sgd(batches, p, seed, lr=0.5):
    """SGD over the batches with Dropout(p) -> Linear in training mode, torch seeded with ``seed``: the
    reference for a loop that puts the model in training mode."""
    model = torch.nn.Sequential(torch.nn.Dropout(p), torch.nn.Linear(4, 3)).train()
    with torch.no_grad():
        model[1].weight.copy_(LINEAR["weight"])
        model[1].bias.copy_(LINEAR["bias"])
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    torch.manual_seed(seed)
    for x, y in batches:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    return losses, model[1]


@pytest.mark.task("3.5", points=1)
def test_train_one_epoch_trains_in_training_mode(student):
    """A model handed over in eval mode (after an evaluation, say) is trained in training mode: its dropout
    is on. The worker's losses and weights are replayed here with dropout on, from the same seed."""
    seed, p = new_seed(), 0.5
    res = student.probe("sgd_epoch_from_eval_mode", p=p, batches=BATCHES * 2, torch_seed=seed, **LINEAR)
    with one_thread():
        losses, linear = replay_dropout_sgd(BATCHES * 2, p, seed)
    what = (f"train_one_epoch of Dropout({p}) -> Linear handed over in eval mode (SGD, torch seeded {seed}): "
            "it must put the model in training mode, so dropout acts")
    assert_close(res["losses"], np.array(losses), f"{what}: the loss of each step")
    assert_close(res["weight"], linear.weight.detach(), f"{what}: the weights after the epoch")


@pytest.mark.task("3.5", points=1)
def test_train_one_epoch_logs_loss_and_lr(student):
    batches = BATCHES * 3  # six steps
    res = student.probe("logged_epoch", batches=batches, step=10, log_every=2, **LINEAR)
    rows = res["rows"]
    if not rows or rows[0] != ["step", "tag", "value"]:
        raise AssertionError(f"metrics.csv must start with the header step,tag,value; it starts with {rows[:1]}")
    logged = {(int(s), t): float(v) for s, t, v in rows[1:]}
    _, losses, _, _ = reference_sgd(batches, lr=0.5, decay=True)
    want = {}
    for i in range(6):
        step = 10 + i + 1
        if step % 2 == 0:
            want[(step, "train/loss")] = losses[i]
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

    def same(rows, want):
        return len(rows) == len(want) and rows[0] == want[0] and all(
            r[:2] == w[:2] and math.isclose(float(r[2]), w[2]) for r, w in zip(rows[1:], want[1:]))

    if not same(res["rows"], want_rows):
        raise AssertionError(f"metrics.csv after logging, closing and reopening (append, one header): {res['rows']}; "
                             f"expected {want_rows}")
    for rows, want, when in ((res["before_close"][0], want_rows[:4], "after the first three scalars"),
                             (res["before_close"][1], want_rows, "after the reopened logger's scalar")):
        if not same(rows, want):
            raise AssertionError(f"metrics.csv read from disk {when}, before close(): {rows}; expected {want}. log() "
                                 "flushes the file, so a run that crashes keeps its curves")
    scalars = {k: [tuple(x) for x in v] for k, v in res["scalars"].items()}
    want_tb = {"train/loss": [(1, 2.5), (2, 2.0)], "train/lr": [(1, 0.01)], "test/acc": [(3, 0.75)]}
    same_tb = set(scalars) == set(want_tb) and all(
        [s for s, _ in scalars[k]] == [s for s, _ in v] and np.allclose([x for _, x in scalars[k]], [x for _, x in v])
        for k, v in want_tb.items())
    if not same_tb:
        raise AssertionError(f"TensorBoard scalars read back: {scalars}; expected {want_tb}")


@pytest.mark.task("3.5", points=1)
def test_evaluate_per_image_in_eval_mode(student):
    after = rand(2, 4, seed=34)
    res = student.probe("evaluate_linear", batches=BATCHES, dropout=0.5, after=after, **LINEAR)
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
    assert_close(res["after"], after @ LINEAR["weight"].T + LINEAR["bias"],
                 "the model's output after evaluate returned: evaluate leaves the model in eval mode (no dropout)")
    if not res["outputs"]:
        raise AssertionError("evaluate never called the model")
    for out in res["outputs"]:
        facts = meta_of(out, "the model's output inside evaluate")
        if facts["requires_grad"] or facts["grad_fn"]:
            raise AssertionError(f"inside evaluate the model's outputs carry an autograd graph (grad_fn "
                                 f"{facts['grad_fn']}): evaluate runs without gradients (torch.no_grad)")


def reference_model(probes, name, state_dict, **kwargs):
    """The same timm model the probe built, with the parameters the worker handed back."""
    model = getattr(probes, name)(**kwargs)
    model.load_state_dict({k: torch.as_tensor(v) for k, v in state_dict.items()}, strict=True)
    return model


@pytest.mark.task("3.5", points=2)
def test_overfits_a_tiny_batch(student):
    """The worker trains a 4-token ViT with the student's loop on one batch and hands back the parameters
    before and after, every step's loss and what the student's evaluate said. Here: the start must be the
    model the seed builds, the same 40 AdamW steps replayed with a reference loop must give the same losses
    and parameters, the trained parameters must classify every image of the batch correctly (computed
    here), and evaluate's numbers must be those of the trained parameters."""
    probes = reference_probes()
    data_seed, seed, epochs, lr = new_seed(), new_seed(), 40, 3e-3
    gen = torch.Generator().manual_seed(data_seed)
    images, labels = torch.randn(16, 3, 16, 16, generator=gen), torch.randint(0, 4, (16,), generator=gen)
    res = student.probe("overfit", images=images, labels=labels, epochs=epochs, lr=lr, init_seed=seed)
    with one_thread():
        torch.manual_seed(seed)
        model = probes.tiny_vit()
        for key, value in model.state_dict().items():
            assert_close(res["initial"][key], value.detach(), f"the model before training ({key})", atol=0, rtol=0)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
        losses = []
        for _ in range(epochs):
            model.train()
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss))
        trained = reference_model(probes, "tiny_vit", res["trained"]).eval()
        with torch.no_grad():
            logits = trained(images)
    what = f"a 4-token ViT trained with your train_one_epoch for {epochs} AdamW steps on one batch of 16 images"
    assert_close(res["losses"], np.array(losses), f"{what}: the loss of each step vs the same steps replayed",
                 atol=1e-5, rtol=1e-4)
    for key, value in model.state_dict().items():
        assert_close(res["trained"][key], value.detach(), f"{what}: the trained parameters vs the replay ({key})",
                     atol=1e-4, rtol=1e-3)
    accuracy = float((logits.argmax(-1) == labels).float().mean())
    if accuracy < 1.0:
        raise AssertionError(f"{what}: the trained parameters classify {accuracy:.0%} of the batch correctly; the "
                             f"loop must memorise it (losses: {np.round(losses[::10], 3).tolist()})")
    loss = float(F.cross_entropy(logits, labels))
    evaluated = res["evaluated"]
    if not (math.isclose(evaluated.get("acc", math.nan), accuracy) and
            math.isclose(evaluated.get("loss", math.nan), loss, rel_tol=1e-3, abs_tol=1e-5)):
        raise AssertionError(f"evaluate on the trained model returned {evaluated}; the trained parameters give acc "
                             f"{accuracy}, loss {loss:.6f}")


@pytest.mark.task("3.5", points=3)
def test_resume_gives_identical_losses(student):
    """The worker trains one epoch, saves a checkpoint, draws other random numbers, builds a fresh model,
    optimizer and scheduler from another seed, loads the checkpoint and trains a second epoch. Here the
    same two epochs run without a stop, with a reference loop: the resumed epoch's losses and the final
    parameters must be theirs."""
    probes = reference_probes()
    data_seed, n, batch = new_seed(), DRAW.choice([10, 12, 14]), DRAW.choice([3, 4])
    gen = torch.Generator().manual_seed(data_seed)
    images, labels = torch.randn(n, 3, 16, 16, generator=gen), torch.randint(0, 4, (n,), generator=gen)
    seed, other_seed, world_seed, lr = new_seed(), new_seed(), new_seed(), 3e-3
    note = f"run-{DRAW.randrange(10**6)}"
    res = student.probe("resume", images=images, labels=labels, run_seed=seed, other_seed=other_seed,
                        world_seed=world_seed, batch=batch, lr=lr, note=note)
    with one_thread():
        model, optimizer, scheduler, loader = probes.resume_setup(images, labels, seed, batch, lr)
        epochs = []
        for _ in range(2):
            losses = []
            model.train()
            for x, y in loader:
                x, targets = probes.resume_mix(x, y)
                loss = -(targets * model(x).log_softmax(-1)).sum(-1).mean()
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                losses.append(float(loss))
            epochs.append(losses)
    steps = len(epochs[0])
    what = (f"{n} images in batches of {batch} (shuffled), dropout, a Mixup-like mix, AdamW, a schedule, clipping "
            f"at 1; torch seeded {seed}")
    assert_close(res["first"], np.array(epochs[0]), f"{what}: the first epoch's losses vs a reference loop",
                 atol=1e-5, rtol=1e-4)
    if len(res["resumed"]) != len(epochs[1]):
        raise AssertionError(f"the resumed epoch took {len(res['resumed'])} steps; an epoch has {len(epochs[1])}")
    assert_close(res["resumed"], np.array(epochs[1]),
                 f"{what}: the losses of the epoch after load_checkpoint vs the same epoch of a run that never stopped "
                 "(restore the model, the optimizer, the scheduler AND every random generator: the data order, the "
                 "mix and dropout draw from them)", atol=1e-5, rtol=1e-4)
    for key, value in model.state_dict().items():
        assert_close(res["final"][key], value.detach(), f"{what}: the parameters after the resumed epoch vs the run "
                     f"that never stopped ({key})", atol=1e-4, rtol=1e-3)
    want_state = {"epoch": 1, "step": steps, "note": note}
    got_state = {k: res["state"].get(k) for k in want_state}
    if got_state != want_state:
        raise AssertionError(f"load_checkpoint returned {res['state']}; expected epoch 1, step {steps} and the extra "
                             f"keyword note={note!r}")
    saved, error = read_checkpoint(res["file"])
    want_keys = ["epoch", "extra", "model", "optimizer", "rng", "scheduler", "step"]
    if saved is None or sorted(saved) != want_keys:
        raise AssertionError(f"the checkpoint file, read with torch.load(weights_only=True), holds "
                             f"{error or sorted(saved)}; expected a dict with the keys {want_keys}")


def read_checkpoint(raw):
    """A checkpoint file's bytes, read here with weights_only=True: (its dict or None, the error)."""
    import io

    data = np.asarray(raw, dtype=np.uint8).tobytes()
    if not data:
        return None, "nothing: the file does not exist"
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True), ""
    except Exception as exc:  # noqa: BLE001 - a broken file is the finding
        return None, f"a file that does not load ({type(exc).__name__})"


@pytest.mark.task("3.5", points=1)
def test_checkpoint_survives_a_crash_while_saving(student):
    """save_checkpoint writes a temporary file and renames it: when the write of epoch 2 fails half-way (a
    full disk, a killed job), the file still holds epoch 1, complete."""
    res = student.probe("interrupted_save")
    if not res["save_calls"]:
        raise AssertionError("save_checkpoint never called torch.save (the test interrupts torch.save half-way)")
    saved, error = read_checkpoint(res["file"])
    epoch = saved.get("epoch") if isinstance(saved, dict) else None
    if epoch != 1:
        found = error or f"epoch {epoch}"
        raise AssertionError(f"after a save of epoch 2 failed half-way, the checkpoint holds {found}; it must still "
                             "hold epoch 1: write to a temporary file, then os.replace it onto the checkpoint")


@pytest.mark.task("3.5", points=1)
def test_load_checkpoint_refuses_arbitrary_objects(student):
    """load_checkpoint reads with torch.load(weights_only=True): a checkpoint from elsewhere that holds an
    arbitrary Python object (which could run code when unpickled) is refused, not executed."""
    res = student.probe("load_untrusted")
    plain, untrusted = res["plain"], res["untrusted"]
    if plain["returned"] != {"epoch": 4, "step": 9}:
        raise AssertionError(f"load_checkpoint of a checkpoint of tensors and plain values (epoch 4, step 9) "
                             f"returned {plain['returned']}, raising {plain['raised'][:1]}")
    if not any(c.endswith("UnpicklingError") for c in untrusted["raised"]):
        found = f"raised {untrusted['raised'][0]}" if untrusted["raised"] else "loaded it"
        raise AssertionError(f"load_checkpoint of a file holding an arbitrary Python object {found}; read checkpoints "
                             "with torch.load(..., weights_only=True), which refuses it (pickle.UnpicklingError)")


# ================================================================ Task 3.6: fine-tuning
def timm_model(kind):
    return reference_probes().build_timm(kind)


HEADS = {"vit": ("head",), "deit": ("head", "head_dist"), "resnet": ("fc",), "convnext": ("head.fc",)}


def trainable(params, what):
    """Names of the parameters that require grad, as the worker's wire recorded them."""
    return [name for name, value in params.items() if meta_of(value, f"{what}: {name}")["requires_grad"]]


def check_finetune_step(step, want, total, trainable_count, what):
    got = trainable(step["params"], what)
    if got != want:
        raise AssertionError(f"{what}: trainable {got}; expected {want}")
    if step["returned"] is None or trainable(step["returned"], what) != want:
        raise AssertionError(f"{what}: prepare_finetune returns the model it changed (in place)")
    count = tuple(int(np.asarray(c)) for c in step["count"])
    if count != (trainable_count, total):
        raise AssertionError(f"count_parameters {what}: {count}; expected (trainable, total) = "
                             f"{(trainable_count, total)}")


@pytest.mark.task("3.6", points=2)
@pytest.mark.parametrize("kind", list(HEADS))
def test_linear_probe_trains_only_the_classifier(student, kind):
    model = timm_model(kind)
    heads = HEADS[kind]
    want = [n for n, _ in model.named_parameters() if n.rsplit(".", 1)[0] in heads]
    params = dict(model.named_parameters())
    res = student.probe("finetune_state", kind=kind, modes=["linear_probe"])
    check_finetune_step(res["steps"][0], want, sum(p.numel() for p in model.parameters()),
                        sum(params[n].numel() for n in want),
                        f"after the linear probe of a timm {kind} (only the classifier, model.get_classifier())")


@pytest.mark.task("3.6", points=1)
def test_linear_probe_of_a_frozen_model(student):
    """A model that arrives with everything frozen (its head too, say after an earlier feature extraction):
    the linear probe makes the head trainable, whatever its state before."""
    model = timm_model("convnext")
    want = [n for n, _ in model.named_parameters() if n.startswith("head.fc.")]
    total = sum(p.numel() for p in model.parameters())
    res = student.probe("finetune_state", kind="convnext", modes=["linear_probe"], freeze_first=["*"])
    check_finetune_step(res["steps"][0], want, total, sum(dict(model.named_parameters())[n].numel() for n in want),
                        "after the linear probe of a timm ConvNeXt whose parameters were all frozen before")


@pytest.mark.task("3.6", points=1)
def test_full_finetuning_unfreezes_everything(student):
    model = timm_model("vit")
    names = [n for n, _ in model.named_parameters()]
    total = sum(p.numel() for p in model.parameters())
    res = student.probe("finetune_state", kind="vit", modes=["linear_probe", "full"],
                        freeze_first=["cls_token", "blocks.0.attn.qkv.weight"])
    check_finetune_step(res["steps"][1], names, total, total, "after prepare_finetune(model, 'full') following a "
                        "linear probe (and with some parameters frozen before)")
    raised = student.probe("finetune_bad_mode", kind="vit", mode="partial")
    if "builtins.ValueError" not in raised:
        raise AssertionError(f"prepare_finetune(model, 'partial') must raise ValueError; it raised "
                             f"{raised[0] if raised else 'nothing'}")


@pytest.mark.task("3.6", points=1)
def test_count_parameters_with_frozen_and_shared(student):
    vocab, dim, extra = DRAW.randrange(5, 40), DRAW.randrange(2, 9), DRAW.randrange(2, 7)
    frozen = DRAW.choice([["extra.weight"], ["extra.bias", "decoder.bias"], ["embed.weight"]])
    model = reference_probes().tied_model(vocab, dim, extra)
    for name, param in model.named_parameters():
        param.requires_grad_(name not in frozen)
    want = (sum(p.numel() for p in model.parameters() if p.requires_grad), sum(p.numel() for p in model.parameters()))
    got = student.probe("count_shared", vocab=vocab, dim=dim, extra=extra, freeze=frozen)
    got = tuple(int(np.asarray(c)) for c in got) if isinstance(got, (tuple, list)) else got
    if got != want:
        raise AssertionError(f"count_parameters of Embedding({vocab}, {dim}) tied to a decoder Linear({dim}, {vocab}) "
                             f"(one shared weight: counted once) and Linear({dim}, {extra}), with {frozen} frozen: "
                             f"{got}; expected (trainable, total) = {want}")
