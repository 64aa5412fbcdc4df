"""Week 3 probes: run in the sandboxed worker with the student's vitcourse package.

They build what a test needs next to the student's code (models, loaders, optimizers, a scratch
folder), run it, and return tensors and plain data; the tests decide. Earlier weeks' modules
(``vitcourse.vit``) are the reference versions here.
"""

import csv
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


# ---------------------------------------------------------------- Task 3.1: the schedule
def schedule(steps: list, cfg: dict) -> list:
    """warmup_cosine(step, **cfg) for each step (one call instead of one per step)."""
    from vitcourse.schedules import warmup_cosine

    return [float(warmup_cosine(step, **cfg)) for step in steps]


# ---------------------------------------------------------------- Task 3.2: parameter groups
class Nested(nn.Module):
    """Parameters named ``encoder.pos_embed``, ``encoder.cls_token``, a conv kernel, a BatchNorm, a 2-d gate."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.pos_embed = nn.Parameter(torch.zeros(1, 5, 4))
        self.encoder.cls_token = nn.Parameter(torch.zeros(1, 1, 4))
        self.encoder.proj = nn.Linear(4, 4)
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.gate = nn.Parameter(torch.zeros(4, 4))  # 2-d, not named: decayed
        self.scale = nn.Parameter(torch.ones(()))  # 0-d: not decayed


def build_for_groups(kind: str) -> nn.Module:
    import timm
    from timm.models.deit import VisionTransformerDistilled

    torch.manual_seed(0)
    if kind == "vit":
        from timm.models.vision_transformer import VisionTransformer

        return VisionTransformer(img_size=16, patch_size=8, embed_dim=8, depth=2, num_heads=2, num_classes=3)
    if kind == "deit":
        return VisionTransformerDistilled(img_size=16, patch_size=8, embed_dim=8, depth=1, num_heads=2, num_classes=3)
    if kind == "nested":
        return Nested()
    if kind == "resnet":
        return timm.create_model("resnet18", pretrained=False, num_classes=3, layers=(1, 1, 1, 1),
                                 channels=(8, 8, 8, 8), stem_width=8)
    if kind == "nobias":
        return nn.Linear(3, 4, bias=False)
    raise ValueError(kind)


def groups_by_name(kind: str, weight_decay: float, freeze: list | None = None) -> list:
    """The student's param_groups on a model, as [{"names": [...], "weight_decay": ...}, ...]."""
    from vitcourse.optim import param_groups

    model = build_for_groups(kind)
    for name, param in model.named_parameters():
        if name in (freeze or []):
            param.requires_grad_(False)
    names = {id(p): n for n, p in model.named_parameters()}
    groups = param_groups(model, weight_decay)
    return [{"names": [names.get(id(p), "<not a parameter of the model>") for p in g["params"]],
             "weight_decay": float(g["weight_decay"]), "keys": sorted(g)} for g in groups]


# ---------------------------------------------------------------- Task 3.3: augmentation
def cutmix_boxes(height: int, width: int, lams: list, seeds: list) -> list:
    """cutmix_box(height, width, lam) for each (lam, seed), the global generator seeded with seed."""
    from vitcourse.augment import cutmix_box

    boxes = []
    for lam, seed in zip(lams, seeds):
        torch.manual_seed(seed)
        boxes.append(tuple(int(v) for v in cutmix_box(height, width, lam)))
    return boxes


def mix_batches(init: dict, images: torch.Tensor, labels: torch.Tensor, seeds: list) -> list:
    """MixupCutmix(**init)(images, labels) once per seed: [(images, targets), ...]."""
    from vitcourse.augment import MixupCutmix

    mix = MixupCutmix(**init)
    out = []
    for seed in seeds:
        torch.manual_seed(seed)
        mixed, targets = mix(images.clone(), labels.clone())
        out.append((mixed, targets))
    return out


def cutmix_calls(images: torch.Tensor, targets: torch.Tensor, lams: list, perm: torch.Tensor, seeds: list) -> list:
    """cutmix(images, targets, lam, perm) per (lam, seed): [(images, targets, lam_used), ...]; the inputs
    are checked for changes too (returned as the last element)."""
    from vitcourse.augment import cutmix

    out = []
    for lam, seed in zip(lams, seeds):
        torch.manual_seed(seed)
        x, y = images.clone(), targets.clone()
        mixed, mixed_targets, lam_used = cutmix(x, y, lam, perm)
        out.append((mixed, mixed_targets, float(lam_used), bool(torch.equal(x, images) and torch.equal(y, targets))))
    return out


# ---------------------------------------------------------------- Task 3.4: distillation
def distillation_grads(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperatures: list) -> dict:
    """Gradients of the student's soft_distillation_loss w.r.t. both logits, at each temperature."""
    from vitcourse.distill import soft_distillation_loss

    out = {"loss": [], "student_grad": [], "teacher_grad": []}
    for t in temperatures:
        leaf_s, leaf_t = student_logits.clone().requires_grad_(), teacher_logits.clone().requires_grad_()
        loss = soft_distillation_loss(leaf_s, leaf_t, t)
        loss.backward()
        out["loss"].append(float(loss))
        out["student_grad"].append(leaf_s.grad.clone())
        out["teacher_grad"].append(leaf_t.grad.clone() if leaf_t.grad is not None else torch.zeros_like(leaf_t))
    return out


def distilled_vit_facts(init: dict) -> dict:
    """Parameter shapes and initial statistics of the student's DistilledVisionTransformer(**init)."""
    from vitcourse.distill import DistilledVisionTransformer

    model = DistilledVisionTransformer(**init)
    params = dict(model.named_parameters())
    facts = {"shapes": {n: list(p.shape) for n, p in params.items()}}
    for name in ("dist_token", "pos_embed", "cls_token"):
        if name in params:
            facts[f"{name}_std"] = float(params[name].detach().std()) if params[name].numel() > 1 else 0.0
    if "head_dist.weight" in params:
        facts["head_dist_weight_std"] = float(params["head_dist.weight"].detach().std())
        facts["head_dist_bias_max"] = float(params["head_dist.bias"].detach().abs().max())
    facts["trainable"] = {n: bool(p.requires_grad) for n, p in params.items()}
    return facts


# ---------------------------------------------------------------- Task 3.5: the loop
def _linear(weight: torch.Tensor, bias: torch.Tensor) -> nn.Linear:
    model = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        model.weight.copy_(weight)
        model.bias.copy_(bias)
    return model


class _Recorder:
    """A criterion that records every loss (and the targets it got)."""

    def __init__(self, smoothing: float = 0.0) -> None:
        self.losses, self.targets, self.smoothing = [], [], smoothing

    def __call__(self, images, outputs, targets):
        if isinstance(outputs, (tuple, list)):
            outputs = (outputs[0] + outputs[1]) / 2
        if targets.ndim == 2:
            loss = -(targets * outputs.log_softmax(-1)).sum(-1).mean()
        else:
            loss = F.cross_entropy(outputs, targets, label_smoothing=self.smoothing)
        self.losses.append(float(loss.detach()))
        self.targets.append(targets.detach().clone())
        return loss


def one_sgd_epoch(weight: torch.Tensor, bias: torch.Tensor, batches: list, clip_grad=None, amp: bool = False,
                  lr: float = 1.0, with_scheduler: bool = False) -> dict:
    """train_one_epoch of a linear model with SGD(lr) over the given (x, y) batches; what changed."""
    from vitcourse.training import train_one_epoch

    model = _linear(weight, bias)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (1 + s)) if with_scheduler else None
    recorder = _Recorder()
    result = train_one_epoch(model, [(x, y) for x, y in batches], optimizer, recorder, scheduler=scheduler,
                             clip_grad=clip_grad, amp=amp, device="cpu", progress=False)
    return {"weight": model.weight.detach(), "bias": model.bias.detach(), "losses": recorder.losses,
            "result": {k: float(v) for k, v in result.items()}, "training": model.training}


def logged_epoch(weight: torch.Tensor, bias: torch.Tensor, batches: list, step: int, log_every: int) -> dict:
    """train_one_epoch with the student's MetricLogger and a decaying schedule; the CSV it wrote."""
    from vitcourse.training import MetricLogger, train_one_epoch

    model = _linear(weight, bias)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (1 + s))
    recorder = _Recorder()
    folder = Path(tempfile.mkdtemp(prefix="logs-", dir=Path.cwd()))
    logger = MetricLogger(folder, tensorboard=False)
    result = train_one_epoch(model, [(x, y) for x, y in batches], optimizer, recorder, scheduler=scheduler,
                             logger=logger, step=step, log_every=log_every, progress=False)
    logger.close()
    with open(folder / "metrics.csv", newline="") as f:
        rows = list(csv.reader(f))
    return {"rows": rows, "losses": recorder.losses, "step": int(result["step"])}


def logger_files(entries: list, reopen_entries: list) -> dict:
    """Log ``entries`` [(step, {tag: value})], close, reopen the folder and log ``reopen_entries``; the CSV
    rows and the TensorBoard scalars read back."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from vitcourse.training import MetricLogger

    folder = Path(tempfile.mkdtemp(prefix="logs-", dir=Path.cwd()))
    for batch in (entries, reopen_entries):
        logger = MetricLogger(folder)
        for step, metrics in batch:
            logger.log(step, metrics)
        logger.close()
    with open(folder / "metrics.csv", newline="") as f:
        rows = list(csv.reader(f))
    scalars = {}
    for events in sorted(folder.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend((int(e.step), float(e.value)) for e in acc.Scalars(tag))
    return {"rows": rows, "scalars": {k: sorted(v) for k, v in scalars.items()}}


def evaluate_linear(weight: torch.Tensor, bias: torch.Tensor, batches: list, dropout: float = 0.0) -> dict:
    """The student's evaluate on Dropout(p) -> Linear; and the mode the model was left in."""
    from vitcourse.training import evaluate

    model = nn.Sequential(nn.Dropout(dropout), _linear(weight, bias))
    model.train()
    result = evaluate(model, [(x, y) for x, y in batches], device="cpu")
    return {"result": {k: float(v) for k, v in result.items()}, "training": model.training}


def _tiny_vit(dropout: float = 0.0) -> nn.Module:
    from vitcourse.vit import VisionTransformer

    return VisionTransformer(img_size=16, patch_size=8, embed_dim=32, depth=1, num_heads=2, mlp_ratio=2.0,
                             num_classes=4, dropout=dropout)


def overfit(images: torch.Tensor, labels: torch.Tensor, epochs: int = 60, lr: float = 3e-3) -> dict:
    """A 4-token ViT trained with the student's train_one_epoch on one batch; the student's evaluate after."""
    from vitcourse.training import evaluate, train_one_epoch

    torch.manual_seed(0)
    model = _tiny_vit()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    criterion = _Recorder()
    history = []
    for _ in range(epochs):
        result = train_one_epoch(model, [(images, labels)], optimizer, criterion, device="cpu", progress=False)
        history.append(float(result["loss"]))
    scores = evaluate(model, [(images, labels)], device="cpu")
    with torch.no_grad():
        predicted = model.eval()(images).argmax(-1)
    return {"acc": float(scores["acc"]), "loss": float(scores["loss"]), "history": history,
            "recorded": criterion.losses, "predicted": predicted}


def resume(images: torch.Tensor, labels: torch.Tensor, steps_per_epoch: int = 3, batch: int = 4) -> dict:
    """Two epochs straight, against one epoch + save_checkpoint + a fresh model/optimizer/scheduler +
    load_checkpoint + the second epoch. Everything random is on: a shuffled DataLoader, dropout, a
    Mixup-like mix drawing from torch's generator, AdamW (its moments) and a schedule (its step). Only
    the loop and the checkpoint functions are the student's."""
    from torch.utils.data import DataLoader, TensorDataset

    from vitcourse.training import load_checkpoint, save_checkpoint, train_one_epoch

    def setup(seed: int):
        torch.manual_seed(seed)
        model = _tiny_vit(dropout=0.2)
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.05)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 3) * 0.8**s)
        loader = DataLoader(TensorDataset(images, labels), batch_size=batch, shuffle=True)
        return model, optimizer, scheduler, loader

    def mix(x, y):  # a random augmentation drawing from torch's generator, like Mixup
        lam = float(torch.rand(()))
        perm = torch.randperm(x.shape[0])
        return lam * x + (1 - lam) * x[perm], lam * F.one_hot(y, 4).float() + (1 - lam) * F.one_hot(y[perm], 4).float()

    def epoch(model, optimizer, scheduler, loader, step):
        recorder = _Recorder()
        result = train_one_epoch(model, loader, optimizer, recorder, scheduler=scheduler, mix=mix, clip_grad=1.0,
                                 step=step, device="cpu", progress=False)
        return recorder.losses, int(result["step"])

    model, optimizer, scheduler, loader = setup(0)
    first, step = epoch(model, optimizer, scheduler, loader, 0)
    straight, _ = epoch(model, optimizer, scheduler, loader, step)

    model, optimizer, scheduler, loader = setup(0)
    first_again, step = epoch(model, optimizer, scheduler, loader, 0)
    folder = Path(tempfile.mkdtemp(prefix="ckpt-", dir=Path.cwd()))
    save_checkpoint(folder / "checkpoint.pt", model, optimizer, scheduler, epoch=1, step=step, note="hello")
    torch.manual_seed(12345)  # the world moves on: other random numbers are drawn before the resume
    torch.rand(100)
    model, optimizer, scheduler, loader = setup(7)  # a fresh start with other weights
    state = load_checkpoint(folder / "checkpoint.pt", model, optimizer, scheduler)
    resumed, _ = epoch(model, optimizer, scheduler, loader, int(state["step"]))
    saved = torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=True)
    return {"first": first, "first_again": first_again, "straight": straight, "resumed": resumed,
            "state": {k: v for k, v in state.items() if isinstance(v, (int, float, str))},
            "keys": sorted(saved), "lr_after": float(optimizer.param_groups[0]["lr"])}


# ---------------------------------------------------------------- Task 3.6: fine-tuning
def build_timm(kind: str) -> nn.Module:
    import timm

    torch.manual_seed(0)
    small_vit = dict(embed_dim=16, depth=2, num_heads=2, img_size=32)
    if kind == "vit":
        return timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=5, **small_vit)
    if kind == "deit":
        return timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False, num_classes=5, **small_vit)
    if kind == "resnet":
        return timm.create_model("resnet18", pretrained=False, num_classes=5, layers=(1, 1, 1, 1),
                                 channels=(8, 8, 8, 8), stem_width=8)
    if kind == "convnext":
        return timm.create_model("convnext_atto", pretrained=False, num_classes=5, depths=(1, 1, 1, 1),
                                 dims=(8, 8, 8, 8))
    raise ValueError(kind)


def finetune_state(kind: str, modes: list, freeze_first: list | None = None) -> dict:
    """Apply the student's prepare_finetune(model, mode) for each mode in turn; the trainable names and the
    student's count_parameters after each."""
    from vitcourse.finetune import count_parameters, prepare_finetune

    model = build_timm(kind)
    for name, param in model.named_parameters():
        if name in (freeze_first or []):
            param.requires_grad_(False)
    steps = []
    for mode in modes:
        returned = prepare_finetune(model, mode)
        steps.append({"trainable": [n for n, p in model.named_parameters() if p.requires_grad],
                      "count": tuple(int(c) for c in count_parameters(model)), "returned_model": returned is model})
    return {"steps": steps}


def finetune_bad_mode(kind: str, mode: str) -> list:
    """prepare_finetune(model, mode) on a real model; the classes of what it raised ([] if nothing)."""
    from vitcourse.finetune import prepare_finetune

    try:
        prepare_finetune(build_timm(kind), mode)
    except Exception as exc:  # noqa: BLE001 - the test decides what is right
        return [f"{c.__module__}.{c.__qualname__}" for c in type(exc).__mro__]
    return []


def count_shared(freeze: list) -> tuple:
    """count_parameters on a model with a tied (shared) weight and some frozen parameters."""
    from vitcourse.finetune import count_parameters

    embed = nn.Embedding(7, 3)
    decoder = nn.Linear(3, 7)
    decoder.weight = embed.weight  # tied: one parameter, used twice
    model = nn.ModuleDict({"embed": embed, "decoder": decoder, "extra": nn.Linear(3, 2)})
    for name, param in model.named_parameters():
        if name in freeze:
            param.requires_grad_(False)
    return tuple(int(c) for c in count_parameters(model))
