"""Week 3 probes: run in the sandboxed worker with the student's vitcourse package.

They build what a test needs next to the student's code (models, loaders, optimizers, a scratch
folder), run it, and return raw material: outputs, parameters before and after, the inputs after the
call, files as read back. They never judge: every verdict is computed by the hidden test in the
grader's process, which replays training with its own reference loop where training is involved.
The student's package is imported inside each function, never at module level (this module is
loaded before it). The models are built from timm or from plain torch, so the judge can build the
very same ones (it imports this file for the builders).
"""

import csv
import io
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


def cutmix_boxes_from_generator(height: int, width: int, lams: list, seeds: list, global_seed: int) -> dict:
    """cutmix_box(height, width, lam, generator) with a generator seeded per draw, the global generator
    seeded once with ``global_seed``; the boxes, and the next number the global generator gives after
    all of them (it tells whether the boxes drew from it)."""
    from vitcourse.augment import cutmix_box

    torch.manual_seed(global_seed)
    boxes = [tuple(int(v) for v in cutmix_box(height, width, lam, torch.Generator().manual_seed(seed)))
             for lam, seed in zip(lams, seeds)]
    return {"boxes": boxes, "global_next": torch.rand(4)}


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


def distilled_vit_parameters(init: dict, init_seed: int) -> dict:
    """The parameters of a fresh DistilledVisionTransformer(**init), as they are (the judge reads their
    shapes, values and requires_grad)."""
    from vitcourse.distill import DistilledVisionTransformer

    torch.manual_seed(init_seed)
    return dict(DistilledVisionTransformer(**init).named_parameters())


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
            "result": {k: float(v) for k, v in result.items()}}


def dropout_linear(weight: torch.Tensor, bias: torch.Tensor, p: float) -> nn.Module:
    """Dropout(p) -> Linear: a model whose output says which mode it ran in."""
    return nn.Sequential(nn.Dropout(p), _linear(weight, bias))


def sgd_epoch_from_eval_mode(weight: torch.Tensor, bias: torch.Tensor, p: float, batches: list, torch_seed: int,
                             lr: float = 0.5) -> dict:
    """train_one_epoch of Dropout(p) -> Linear handed over in eval mode (SGD, torch seeded with
    ``torch_seed`` just before the call); the losses and the weights after."""
    from vitcourse.training import train_one_epoch

    model = dropout_linear(weight, bias, p).eval()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    recorder = _Recorder()
    torch.manual_seed(torch_seed)
    train_one_epoch(model, [(x, y) for x, y in batches], optimizer, recorder, device="cpu", progress=False)
    return {"losses": recorder.losses, "weight": model[1].weight.detach(), "bias": model[1].bias.detach()}


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


def _read_rows(path: Path) -> list:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def logger_files(entries: list, reopen_entries: list) -> dict:
    """Log ``entries`` [(step, {tag: value})], close, reopen the folder and log ``reopen_entries``; the CSV
    rows as they are on disk before each close (a crashed run keeps what was logged), after, and the
    TensorBoard scalars read back."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from vitcourse.training import MetricLogger

    folder = Path(tempfile.mkdtemp(prefix="logs-", dir=Path.cwd()))
    before_close = []
    for batch in (entries, reopen_entries):
        logger = MetricLogger(folder)
        for step, metrics in batch:
            logger.log(step, metrics)
        before_close.append(_read_rows(folder / "metrics.csv") if (folder / "metrics.csv").exists() else [])
        logger.close()
    scalars = {}
    for events in sorted(folder.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend((int(e.step), float(e.value)) for e in acc.Scalars(tag))
    return {"rows": _read_rows(folder / "metrics.csv"), "before_close": before_close,
            "scalars": {k: sorted(v) for k, v in scalars.items()}}


class _Capture(nn.Module):
    """Wraps a model and keeps every output of its forward, as it was produced (with its graph, if any)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.outputs = model, []

    def forward(self, x):
        out = self.model(x)
        self.outputs.append(out)
        return out


def evaluate_linear(weight: torch.Tensor, bias: torch.Tensor, batches: list, dropout: float, after: torch.Tensor
                    ) -> dict:
    """The student's evaluate on Dropout(p) -> Linear, handed over in training mode. Returns its result,
    the outputs of every forward pass it made (as produced: the judge reads whether they carry a graph),
    and the model's output on ``after`` in whatever mode evaluate left it."""
    from vitcourse.training import evaluate

    model = _Capture(dropout_linear(weight, bias, dropout)).train()
    result = evaluate(model, [(x, y) for x, y in batches], device="cpu")
    seen = list(model.outputs)
    with torch.no_grad():
        later = model.model(after)
    return {"result": {k: float(v) for k, v in result.items()}, "outputs": seen, "after": later}


def tiny_vit(dropout: float = 0.0) -> nn.Module:
    """A 4-token ViT (timm's): the judge builds the same one to check and replay what the worker trained."""
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(img_size=16, patch_size=8, embed_dim=32, depth=1, num_heads=2, mlp_ratio=2.0,
                             num_classes=4, drop_rate=dropout, proj_drop_rate=dropout)


def _state(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def overfit(images: torch.Tensor, labels: torch.Tensor, epochs: int, lr: float, init_seed: int) -> dict:
    """A 4-token ViT trained with the student's train_one_epoch on one batch (AdamW, no weight decay),
    then the student's evaluate on it: the parameters before and after, the loss of every step and
    what evaluate returned. The judge recomputes everything it grades from these."""
    from vitcourse.training import evaluate, train_one_epoch

    torch.manual_seed(init_seed)
    model = tiny_vit()
    initial = _state(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    criterion = _Recorder()
    for _ in range(epochs):
        train_one_epoch(model, [(images, labels)], optimizer, criterion, device="cpu", progress=False)
    scores = evaluate(model, [(images, labels)], device="cpu")
    return {"initial": initial, "trained": _state(model), "losses": criterion.losses,
            "evaluated": {k: float(v) for k, v in scores.items()}}


def resume_schedule(step: int) -> float:
    """The resume test's learning-rate factor: a short warmup, then a decay (its step matters)."""
    return min(1.0, (step + 1) / 3) * 0.8**step


def resume_mix(x: torch.Tensor, y: torch.Tensor):
    """A random augmentation drawing from torch's generator, like Mixup: (images, soft targets)."""
    lam = float(torch.rand(()))
    perm = torch.randperm(x.shape[0])
    return lam * x + (1 - lam) * x[perm], lam * F.one_hot(y, 4).float() + (1 - lam) * F.one_hot(y[perm], 4).float()


def resume_setup(images: torch.Tensor, labels: torch.Tensor, seed: int, batch: int, lr: float):
    """Model (dropout 0.2), AdamW, a LambdaLR and a shuffling DataLoader, torch seeded with ``seed`` first.
    The judge calls this too, to replay the run without a stop."""
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(seed)
    model = tiny_vit(dropout=0.2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, resume_schedule)
    loader = DataLoader(TensorDataset(images, labels), batch_size=batch, shuffle=True)
    return model, optimizer, scheduler, loader


def resume(images: torch.Tensor, labels: torch.Tensor, run_seed: int, other_seed: int, world_seed: int, batch: int,
           lr: float, note: str) -> dict:
    """One epoch, save_checkpoint, the world moves on (other random numbers are drawn), a fresh model,
    optimizer and scheduler (built from ``other_seed``), load_checkpoint, a second epoch. Everything
    random is on: a shuffled DataLoader, dropout, a Mixup-like mix, AdamW's moments, a schedule's step.
    Only the loop and the checkpoint functions are the student's. The losses of both epochs, the
    parameters at the end, what load_checkpoint returned and the keys of the file."""
    from vitcourse.training import load_checkpoint, save_checkpoint, train_one_epoch

    def epoch(model, optimizer, scheduler, loader, step):
        recorder = _Recorder()
        result = train_one_epoch(model, loader, optimizer, recorder, scheduler=scheduler, mix=resume_mix,
                                 clip_grad=1.0, step=step, device="cpu", progress=False)
        return recorder.losses, int(result["step"])

    model, optimizer, scheduler, loader = resume_setup(images, labels, run_seed, batch, lr)
    first, step = epoch(model, optimizer, scheduler, loader, 0)
    folder = Path(tempfile.mkdtemp(prefix="ckpt-", dir=Path.cwd()))
    save_checkpoint(folder / "checkpoint.pt", model, optimizer, scheduler, epoch=1, step=step, note=note)
    torch.manual_seed(world_seed)  # the world moves on: other random numbers are drawn before the resume
    torch.rand(100)
    model, optimizer, scheduler, loader = resume_setup(images, labels, other_seed, batch, lr)
    state = load_checkpoint(folder / "checkpoint.pt", model, optimizer, scheduler)
    resumed, _ = epoch(model, optimizer, scheduler, loader, int(state["step"]))
    return {"first": first, "resumed": resumed, "final": _state(model),
            "state": {k: v for k, v in state.items() if isinstance(v, (int, float, str))},
            "file": _file_bytes(folder / "checkpoint.pt")}


def _file_bytes(path: Path) -> torch.Tensor:
    """A file's bytes as a uint8 tensor (the judge reads it itself), or an empty one when it does not exist."""
    return torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8) if path.exists() else torch.zeros(0)


def interrupted_save() -> dict:
    """save_checkpoint at epoch 1; then again at epoch 2 with a torch.save that writes half of the file and
    fails (a full disk, a killed job). The checkpoint file's bytes afterwards, for the judge to read."""
    from vitcourse import training

    folder = Path(tempfile.mkdtemp(prefix="ckpt-", dir=Path.cwd()))
    path = folder / "checkpoint.pt"
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    training.save_checkpoint(path, model, optimizer, epoch=1, step=10)
    real_save, calls = torch.save, []

    def failing_save(obj, f, *args, **kwargs):
        calls.append(str(f))
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        half = buffer.getvalue()[: len(buffer.getvalue()) // 2]
        if isinstance(f, (str, Path)):
            with open(f, "wb") as out:
                out.write(half)
        else:
            f.write(half)
        raise OSError("No space left on device (simulated)")

    patched = [(torch, "save")] + [(training, name) for name, value in vars(training).items() if value is real_save]
    for owner, name in patched:
        setattr(owner, name, failing_save)
    failed = ""
    try:
        training.save_checkpoint(path, model, optimizer, epoch=2, step=20)
    except OSError as exc:
        failed = str(exc)
    finally:
        for owner, name in patched:
            setattr(owner, name, real_save)
    return {"save_calls": len(calls), "failed": failed, "file": _file_bytes(path)}


class Untrusted:
    """An object a weights_only load must refuse (it is not a tensor or a plain Python value)."""


def load_untrusted() -> dict:
    """load_checkpoint on two files written here: one of tensors and plain values (what it returned), and
    the same with an arbitrary Python object in it (the classes of what it raised; [] when it loaded)."""
    from vitcourse.training import load_checkpoint, rng_state

    folder = Path(tempfile.mkdtemp(prefix="ckpt-", dir=Path.cwd()))
    model = nn.Linear(3, 2)
    out = {}
    for name, payload in (("plain", [1, 2.5, "three"]), ("untrusted", Untrusted())):
        torch.save({"model": model.state_dict(), "optimizer": None, "scheduler": None, "epoch": 4, "step": 9,
                    "rng": rng_state(), "extra": {"payload": payload}}, folder / f"{name}.pt")
        try:
            returned = load_checkpoint(folder / f"{name}.pt", model)
            out[name] = {"returned": {k: v for k, v in returned.items() if k != "payload"}, "raised": []}
        except Exception as exc:  # noqa: BLE001 - the test decides what is right
            out[name] = {"returned": None, "raised": [f"{c.__module__}.{c.__qualname__}" for c in type(exc).__mro__]}
    return out


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
    """Apply the student's prepare_finetune(model, mode) for each mode in turn. After each: the model's
    parameters as they are (the judge reads requires_grad from them), the parameters of what
    prepare_finetune returned, and the student's count_parameters."""
    from vitcourse.finetune import count_parameters, prepare_finetune

    model = build_timm(kind)
    for name, param in model.named_parameters():
        if name in (freeze_first or []) or "*" in (freeze_first or []):
            param.requires_grad_(False)
    steps = []
    for mode in modes:
        returned = prepare_finetune(model, mode)
        steps.append({"params": dict(model.named_parameters()),
                      "returned": dict(returned.named_parameters()) if isinstance(returned, nn.Module) else None,
                      "count": count_parameters(model)})
    return {"steps": steps}


def finetune_bad_mode(kind: str, mode: str) -> list:
    """prepare_finetune(model, mode) on a real model; the classes of what it raised ([] if nothing)."""
    from vitcourse.finetune import prepare_finetune

    try:
        prepare_finetune(build_timm(kind), mode)
    except Exception as exc:  # noqa: BLE001 - the test decides what is right
        return [f"{c.__module__}.{c.__qualname__}" for c in type(exc).__mro__]
    return []


def tied_model(vocab: int, dim: int, extra: int) -> nn.Module:
    """An embedding tied to a decoder (one parameter, used twice) and an extra Linear(dim, extra)."""
    embed = nn.Embedding(vocab, dim)
    decoder = nn.Linear(dim, vocab)
    decoder.weight = embed.weight  # tied: one parameter, used twice
    return nn.ModuleDict({"embed": embed, "decoder": decoder, "extra": nn.Linear(dim, extra)})


def count_shared(vocab: int, dim: int, extra: int, freeze: list) -> object:
    """The student's count_parameters on :func:`tied_model` with the parameters ``freeze`` frozen."""
    from vitcourse.finetune import count_parameters

    model = tied_model(vocab, dim, extra)
    for name, param in model.named_parameters():
        if name in freeze:
            param.requires_grad_(False)
    return count_parameters(model)
