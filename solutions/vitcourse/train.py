"""The course's training command: a ViT from scratch (CIFAR-10 or digits), its CNN teacher, DeiT
distillation, a speed benchmark, and fine-tuning a pretrained timm model on Food-101.

    python -m vitcourse.train fit cifar10-vit                     # FULL: >= 90 % top-1 is the goal (one GPU)
    torchrun --nproc_per_node=4 -m vitcourse.train fit cifar10-vit   # the same on 4 GPUs (DDP)
    python -m vitcourse.train fit cifar10-cnn                     # the CNN teacher
    python -m vitcourse.train fit cifar10-deit --teacher runs/cifar10-cnn/model.pt   # distillation token
    python -m vitcourse.train benchmark cifar10-vit              # images/s on random CIFAR-shaped tensors
    python -m vitcourse.train finetune --mode linear_probe       # pretrained ViT-B/16 on Food-101
    python -m vitcourse.train finetune --mode full
    python -m vitcourse.train fit digits-vit                      # SMOKE: the notebook's recipe, CPU
    python -m vitcourse.train course-runs                         # the notebook's three SMOKE runs, as shipped
    python -m vitcourse.train fit shapes-vit --seed 0 --out runs/shapes-vit   # Week 6's shipped ViT (CPU, ~4 min)
    python -m vitcourse.train fit shapes-cnn                      # Week 6-7's CNN on the same scenes (CPU, ~20 s)
    python -m vitcourse.train fit shapes-cnn-matched --out runs/shapes-cnn-matched   # Week 7: the ViT's recipe
    python -m vitcourse.train fit textures-vit --out runs/textures-vit               # Week 7: textured scenes
    python -m vitcourse.train fit textures-cnn --out runs/textures-cnn

Everything it does goes through the Week 3 functions (``schedules``, ``optim``, ``augment``,
``distill``, ``training``, ``finetune``) and the Week 2 ``VisionTransformer``: in a student's clone it
runs on the student's own code.

A recipe (:data:`RECIPES`) is everything but the code: the model, the data, the augmentation and the
optimisation. ``fit`` trains it, evaluating on the test split after every epoch, writing
``<out>/metrics.csv`` + TensorBoard events and ``<out>/checkpoint.pt`` after every epoch
(``--resume`` continues from it exactly), and ``<out>/model.pt`` at the end.

Speed on a GPU: the dataset is held on the GPU and augmented there (``vitcourse.batches``), the
forward pass runs in bfloat16 autocast, AdamW is fused (one kernel for all parameters), convolutional
models use channels-last memory, and ``torch.compile`` fuses the ViT's small operations. Real data and
pretrained weights are required for the CIFAR-10 and Food-101 recipes: the command stops before any
work, with the fix, when they are neither cached nor downloadable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from vitcourse.augment import MixupCutmix
from vitcourse.batches import DeviceBatches, RandAugmentBatch, channel_stats, compose, random_hflip, random_shift
from vitcourse.distill import DistillationLoss, DistilledVisionTransformer
from vitcourse.finetune import count_parameters, prepare_finetune
from vitcourse.models import ConvNet, finetune_model, hf_finetune_model, mimetic_init
from vitcourse.optim import make_adamw
from vitcourse.scale import SCALE
from vitcourse.schedules import warmup_cosine_scheduler
from vitcourse.training import (
    ClassificationLoss,
    MetricLogger,
    evaluate,
    load_checkpoint,
    save_checkpoint,
    train_one_epoch,
)
from vitcourse.vit import VisionTransformer


@dataclass
class Recipe:
    """What to train and how: everything but the code."""

    name: str
    dataset: str  # "digits" or "cifar10"
    arch: str  # "vit", "deit" (a ViT with a distillation token) or "cnn"
    model: dict[str, Any]  # constructor arguments of VisionTransformer / DistilledVisionTransformer / ConvNet
    epochs: int
    batch_size: int
    lr: float  # the peak learning rate (after warmup)
    weight_decay: float = 0.05
    warmup_epochs: float = 2.0
    min_lr_ratio: float = 0.0  # the floor of the cosine, as a fraction of lr
    clip_grad: float | None = 1.0
    label_smoothing: float = 0.1
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    mix_prob: float = 1.0
    max_shift: int = 0  # random translation in pixels (pad + crop)
    shift_padding: str = "constant"
    hflip: bool = False
    randaugment: tuple[int, int] | None = None  # (num_ops, magnitude)
    distillation: str = "hard"  # with a teacher: "hard" (DeiT) or "soft" (Hinton)
    distill_alpha: float = 0.5
    temperature: float = 1.0
    amp: bool = True  # bfloat16 autocast (CUDA only)
    compile: bool = True  # torch.compile (CUDA only unless --compile)
    channels_last: bool = False
    target_acc: float = 0.9  # for "epochs to target" in the history
    init: str = "default"  # "mimetic": mimetic attention + 2D sin-cos position start (models.mimetic_init)

    def build_model(self, num_classes: int = 10) -> nn.Module:
        config = dict(self.model, num_classes=num_classes)
        cls = {"vit": VisionTransformer, "deit": DistilledVisionTransformer, "cnn": ConvNet}[self.arch]
        model = cls(**config)
        if self.init == "mimetic":
            mimetic_init(model)
        elif self.init != "default":
            raise ValueError(f"init={self.init!r}: expected 'default' or 'mimetic'")
        return model


DIGITS_VIT = dict(img_size=32, patch_size=8, embed_dim=64, depth=4, num_heads=4, mlp_ratio=2.0)
# FULL: patch 4 (64 tokens) and a ViT-S width (384, 6 heads) at 7 blocks, MLP ratio 3: 10.4 M parameters,
# 1.39 GFLOPs per image forward (vit_num_params / vit_flops of Week 2).
CIFAR_VIT = dict(img_size=32, patch_size=4, embed_dim=384, depth=7, num_heads=6, mlp_ratio=3.0)
# Weeks 6-8: the shape scenes (32 x 32, 6 classes, object masks). Patch 4 gives 64 patch tokens; 141,766 parameters.
SHAPES_VIT = dict(img_size=32, patch_size=4, embed_dim=64, depth=4, num_heads=4, mlp_ratio=2.0)
SHAPES_CNN = dict(widths=(16, 32, 64, 64))  # four conv3x3-BN-GELU-pool stages: 61,078 parameters
# The shapes-vit recipe's training settings, for any model on the scenes (Week 7: same budget for both).
SHAPES_MATCHED = dict(epochs=30, batch_size=64, lr=2e-3, warmup_epochs=2, hflip=True, label_smoothing=0.1, amp=False,
                      compile=False, target_acc=0.95)
CIFAR_STRONG_AUG = dict(max_shift=4, shift_padding="reflect", hflip=True, randaugment=(2, 9), mixup_alpha=0.8,
                        cutmix_alpha=1.0, mix_prob=1.0, label_smoothing=0.1)

RECIPES = {r.name: r for r in [  # name -> Recipe
    # SMOKE (CPU, seconds): the Week 3 notebook's runs on scikit-learn's digits at 32 x 32.
    Recipe("digits-vit", "digits", "vit", DIGITS_VIT, epochs=50, batch_size=128, lr=4e-3, warmup_epochs=2,
           max_shift=2, label_smoothing=0.1, amp=False, compile=False, target_acc=0.97),
    Recipe("digits-deit", "digits", "deit", DIGITS_VIT, epochs=50, batch_size=128, lr=4e-3, warmup_epochs=2,
           max_shift=2, label_smoothing=0.1, distillation="soft", temperature=4.0, amp=False, compile=False,
           target_acc=0.97),
    Recipe("digits-cnn", "digits", "cnn", dict(widths=(32, 64, 128), stem_stride=2), epochs=10, batch_size=64,
           lr=1e-2, warmup_epochs=1, max_shift=2, label_smoothing=0.1, amp=False, compile=False, target_acc=0.97),
    # SMOKE (CPU, minutes): Weeks 6-8's models on the shape scenes (vitcourse.data.shape_scenes). The ViT
    # learns slowly at this size without the mimetic init (data/README.md); its weights ship in data/models/.
    Recipe("shapes-vit", "scenes", "vit", SHAPES_VIT, epochs=30, batch_size=64, lr=2e-3, warmup_epochs=2,
           hflip=True, label_smoothing=0.1, amp=False, compile=False, target_acc=0.95, init="mimetic"),
    Recipe("shapes-cnn", "scenes", "cnn", SHAPES_CNN, epochs=4, batch_size=128, lr=3e-3, warmup_epochs=0.5,
           hflip=True, label_smoothing=0.1, amp=False, compile=False, target_acc=0.95),
    # Week 7's fair comparison: the CNN with exactly the ViT's recipe (data, flips, label smoothing, AdamW,
    # schedule, batch, epochs; only the initialisation is each architecture's own), and both architectures on
    # the textured scenes (textured_scenes: texture k fills shape k), for the cue-conflict test. Shipped.
    Recipe("shapes-cnn-matched", "scenes", "cnn", SHAPES_CNN, **SHAPES_MATCHED),
    Recipe("textures-vit", "textures", "vit", SHAPES_VIT, **SHAPES_MATCHED, init="mimetic"),
    Recipe("textures-cnn", "textures", "cnn", SHAPES_CNN, **SHAPES_MATCHED),
    # FULL (one GPU, minutes): CIFAR-10 from scratch. Not measured on a GPU by the course yet: see the README.
    Recipe("cifar10-vit", "cifar10", "vit", CIFAR_VIT, epochs=200, batch_size=512, lr=1e-3, weight_decay=0.05,
           warmup_epochs=5, min_lr_ratio=0.01, **CIFAR_STRONG_AUG),
    Recipe("cifar10-deit", "cifar10", "deit", CIFAR_VIT, epochs=200, batch_size=512, lr=1e-3, weight_decay=0.05,
           warmup_epochs=5, min_lr_ratio=0.01, **CIFAR_STRONG_AUG),
    Recipe("cifar10-cnn", "cifar10", "cnn", dict(widths=(64, 128, 256, 512), residual=(False, True, False, True)),
           epochs=30, batch_size=512, lr=2e-3, weight_decay=0.05, warmup_epochs=2, max_shift=4,
           shift_padding="reflect", hflip=True, label_smoothing=0.1, channels_last=True, compile=False),
]}


# ---------------------------------------------------------------------------- processes and devices
@dataclass
class Runtime:
    """Where this process runs: its device and, under torchrun, its rank among world_size processes."""

    device: torch.device
    rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_runtime(device: str | None = None) -> Runtime:
    """One process per GPU under torchrun (DDP, NCCL; gloo on the CPU), else a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and not dist.is_initialized():
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        if torch.cuda.is_available() and device != "cpu":
            torch.cuda.set_device(local_rank)
            dist.init_process_group("nccl")
            return Runtime(torch.device("cuda", local_rank), rank, world_size)
        dist.init_process_group("gloo")
        return Runtime(torch.device("cpu"), rank, world_size)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return Runtime(torch.device(device))


def speed_settings(device: torch.device) -> None:
    """TensorFloat-32 matrix products and cuDNN autotuning on CUDA (both harmless elsewhere)."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True


def _say(runtime: Runtime, *args: Any) -> None:
    if runtime.main:
        print(*args, flush=True)


def wrap(model: nn.Module, runtime: Runtime, compile_model: bool) -> nn.Module:
    """What the training loop calls: ``model`` in DistributedDataParallel under torchrun, then compiled when
    ``compile_model``. Checkpoints and evaluation use ``model`` itself."""
    wrapped = model
    if runtime.world_size > 1:
        ids = [runtime.device.index] if runtime.device.type == "cuda" else None
        wrapped = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if compile_model:
        wrapped = torch.compile(wrapped)
    return wrapped


# ---------------------------------------------------------------------------- data
@dataclass
class Data:
    """An in-memory dataset as the recipes need it: uint8 or float images on the CPU, labels, statistics."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[str, ...]
    source: str
    mean: torch.Tensor = field(init=False)
    std: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.mean, self.std = channel_stats(self.x_train)


def load_data(dataset: str, seed: int = 0, verbose: bool = True) -> Data:
    """digits or the shape scenes (generated), or CIFAR-10 (required: :class:`~vitcourse.data.DataUnavailable`
    before any work when it is neither cached nor downloadable). CIFAR-10 is kept as uint8 (4x less memory,
    RandAugment's dtype). "scenes" is ``shape_scenes("train"/"test", seed)``: 6,000 / 1,000 images."""
    from vitcourse.data import load_dataset, shape_scenes

    if dataset == "scenes":
        train, test = shape_scenes("train", seed), shape_scenes("test", seed)
        if verbose:
            print(f"Data: shape scenes (shape_scenes, seed {seed}): {len(train)} train / {len(test)} test "
                  f"3x32x32 images, {len(train.classes)} classes, object masks; generated offline.")
        return Data(train.images, train.labels, test.images, test.labels, train.classes, "scenes")
    if dataset == "textures":
        from vitcourse.data import textured_scenes

        train, test = textured_scenes("train", seed), textured_scenes("test", seed)
        if verbose:
            print(f"Data: textured shape scenes (textured_scenes, seed {seed}): {len(train)} train / {len(test)} "
                  f"test 3x32x32 images, {len(train.classes)} classes, each object filled with its class's texture; "
                  f"generated offline.")
        return Data(train.images, train.labels, test.images, test.labels, train.classes, "textures")
    if dataset == "digits":
        data = load_dataset("digits", seed=seed, verbose=verbose)
        return Data(data.x_train, data.y_train, data.x_test, data.y_test, data.classes, data.source)
    if dataset == "cifar10":
        data = load_dataset("cifar10", require=True, download=True, verbose=verbose)
        as_bytes = lambda x: (x * 255).round().to(torch.uint8)  # exact: the files are uint8
        return Data(as_bytes(data.x_train), data.y_train, as_bytes(data.x_test), data.y_test, data.classes,
                    data.source)
    raise ValueError(f"unknown dataset {dataset!r} (digits, scenes, textures, cifar10)")


def make_batches(recipe: Recipe, data: Data, runtime: Runtime, batch_size: int | None = None
                 ) -> tuple[DeviceBatches, DeviceBatches]:
    """Training batches (shuffled, augmented, sharded under DDP) and test batches (in order), on the device."""
    augment = compose(
        RandAugmentBatch(*recipe.randaugment) if recipe.randaugment else None,
        (lambda x: random_shift(x, recipe.max_shift, recipe.shift_padding)) if recipe.max_shift else None,
        random_hflip if recipe.hflip else None,
    )
    common = dict(mean=data.mean, std=data.std, device=runtime.device,
                  channels_last=recipe.channels_last and runtime.device.type == "cuda")
    train = DeviceBatches(data.x_train, data.y_train, batch_size or recipe.batch_size, shuffle=True, drop_last=True,
                          augment=augment, rank=runtime.rank, world_size=runtime.world_size, **common)
    test = DeviceBatches(data.x_test, data.y_test, 1024, rank=runtime.rank, world_size=runtime.world_size, **common)
    return train, test


def make_mix(recipe: Recipe, num_classes: int) -> MixupCutmix | None:
    """The recipe's targets: label smoothing and Mixup/CutMix in one MixupCutmix (with both alphas 0 it only
    smooths), so every loss sees (B, K) soft targets; None when there is neither."""
    if recipe.mixup_alpha <= 0 and recipe.cutmix_alpha <= 0 and recipe.label_smoothing <= 0:
        return None
    return MixupCutmix(num_classes, recipe.mixup_alpha, recipe.cutmix_alpha, recipe.mix_prob,
                       label_smoothing=recipe.label_smoothing)


# ---------------------------------------------------------------------------- fit
@dataclass
class FitResult:
    """What ``fit`` returns: the trained model (unwrapped, in eval mode) and one history row per epoch."""

    model: nn.Module
    history: list[dict[str, float]]
    recipe: Recipe
    seconds: float  # wall time of the training epochs (evaluations included, start-up excluded)
    cached: bool = False  # read back by fit_cached(), not trained now (see source)
    wall_seconds: float = float("nan")  # fit_cached(): the whole run's wall and CPU time, and torch's threads
    cpu_seconds: float = float("nan")
    threads: int = 0
    # fit_cached(): "trained" now; "cache", an earlier run of exactly this code; "course", the course's own
    # run of the recipe (COURSE_RUNS_ENV), made by the reference solution
    source: str = "trained"

    @property
    def how(self) -> str:
        """Where the run comes from, in words, to go before its wall and CPU time."""
        return {"trained": "trained now in",
                "cache": "read back from an earlier run of this exact code, which took",
                "course": f"the course's own run read back ({COURSE_RUNS_ENV}: trained by the reference solution, "
                          "not by your code), which took"}[self.source]

    @property
    def test_acc(self) -> float:
        return self.history[-1]["test_acc"] if self.history else float("nan")

    def epochs_to(self, target: float) -> int | None:
        """The first epoch (1-based) whose test accuracy reached ``target``; None if none did."""
        return next((int(row["epoch"]) for row in self.history if row["test_acc"] >= target), None)


def fit(recipe: Recipe, data: Data | None = None, *, runtime: Runtime | None = None, teacher: nn.Module | None = None,
        out_dir: str | Path | None = None, resume: bool = False, seed: int = 0, progress: bool = True,
        verbose: bool = False, compile_model: bool | None = None, log_every: int = 50) -> FitResult:
    """Train ``recipe`` from scratch (or from ``out_dir``'s checkpoint with ``resume``); evaluate after every epoch.

    Args:
        data: the dataset (default: :func:`load_data` of the recipe's dataset).
        teacher: a trained model; with it the loss is :class:`~vitcourse.distill.DistillationLoss`
            (``recipe.distillation``, ``distill_alpha``, ``temperature``).
        out_dir: where metrics.csv, TensorBoard events, checkpoint.pt and model.pt go (None: nowhere).
        seed: seeds torch before the model is built (every process alike).
        progress: a tqdm bar over the epochs (test accuracy in its postfix).
        verbose: instead, a tqdm bar over each epoch's batches and one printed line per epoch (the command).
        compile_model: torch.compile the model (default: ``recipe.compile`` on CUDA).
    """
    runtime = runtime or setup_runtime()
    device = runtime.device
    speed_settings(device)
    data = data or load_data(recipe.dataset, seed=seed, verbose=runtime.main)
    torch.manual_seed(seed)
    model = recipe.build_model(len(data.classes)).to(device)
    if recipe.channels_last and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    train_batches, test_batches = make_batches(recipe, data, runtime)
    optimizer = make_adamw(model, recipe.lr, recipe.weight_decay)
    total_steps = recipe.epochs * len(train_batches)
    warmup_steps = min(round(recipe.warmup_epochs * len(train_batches)), total_steps - 1)  # a short run still decays
    scheduler = warmup_cosine_scheduler(optimizer, total_steps, warmup_steps, recipe.min_lr_ratio)
    mix = make_mix(recipe, len(data.classes))
    if teacher is not None:
        teacher = teacher.to(device).eval()
        criterion = DistillationLoss(teacher, recipe.distillation, recipe.distill_alpha, recipe.temperature)
    else:
        criterion = ClassificationLoss()
    history: list[dict[str, float]] = []
    start_epoch, step, elapsed = 0, 0, 0.0
    out = Path(out_dir) if out_dir is not None else None
    if resume and out is not None and (out / "checkpoint.pt").exists():
        state = load_checkpoint(out / "checkpoint.pt", model, optimizer, scheduler, map_location=device)
        start_epoch, step = state["epoch"], state["step"]
        history, elapsed = json.loads(state["history"]), state["seconds"]
        _say(runtime, f"resumed from {out / 'checkpoint.pt'} after epoch {start_epoch} (step {step})")
    compile_now = (recipe.compile and device.type == "cuda") if compile_model is None else compile_model
    trained = wrap(model, runtime, compile_now)
    logger = MetricLogger(out) if out is not None and runtime.main else None
    amp = recipe.amp and device.type == "cuda"
    epochs = range(start_epoch, recipe.epochs)
    bar = tqdm(epochs, desc=recipe.name, unit="epoch", disable=not (progress and runtime.main) or verbose,
               mininterval=2.0)
    try:
        for epoch in bar:
            tick = time.perf_counter()
            train = train_one_epoch(trained, train_batches, optimizer, criterion, scheduler=scheduler, mix=mix,
                                    clip_grad=recipe.clip_grad, amp=amp, device=device, logger=logger, step=step,
                                    log_every=log_every, progress=verbose and runtime.main,
                                    desc=f"{recipe.name} epoch {epoch + 1}/{recipe.epochs}")
            step = train["step"]
            test = evaluate(model, test_batches, device=device, amp=amp)  # the plain model: no DDP collectives
            if device.type == "cuda":
                torch.cuda.synchronize()
            elapsed += time.perf_counter() - tick
            row = {"epoch": epoch + 1, "step": step, "train_loss": train["loss"], "train_acc": train["acc"],
                   "test_loss": test["loss"], "test_acc": test["acc"], "lr": optimizer.param_groups[-1]["lr"],
                   "seconds": elapsed, "images_per_s": train["images"] * runtime.world_size / train["seconds"]}
            history.append(row)
            if logger is not None:
                logger.log(step, {"test/loss": test["loss"], "test/acc": test["acc"], "train/epoch_loss": train["loss"],
                                  "train/epoch_acc": train["acc"], "epoch": epoch + 1})
            if out is not None and runtime.main:
                save_checkpoint(out / "checkpoint.pt", model, optimizer, scheduler, epoch=epoch + 1, step=step,
                                history=json.dumps(history), seconds=elapsed, recipe=recipe.name)
            bar.set_postfix(loss=f"{train['loss']:.3f}", test_acc=f"{test['acc']:.3f}", refresh=False)
            if verbose and runtime.main:
                print(f"{recipe.name} epoch {epoch + 1:>3}/{recipe.epochs}: train loss {train['loss']:.3f}, "
                      f"test acc {test['acc']:.4f}, {row['images_per_s']:,.0f} images/s, {elapsed:.0f} s", flush=True)
    finally:
        bar.close()
        if logger is not None:
            logger.close()
    model.eval()
    if out is not None and runtime.main:
        config = dict(recipe.model, num_classes=len(data.classes))
        torch.save({"recipe": recipe.name, "arch": recipe.arch, "config": config, "state_dict": model.state_dict(),
                    "mean": data.mean, "std": data.std, "test_acc": history[-1]["test_acc"] if history else None,
                    "seed": seed, "dataset": data.source, "classes": list(data.classes), "seconds": elapsed,
                    "history": json.dumps(history), "recipe_fields": json.dumps(asdict(recipe)),
                    "torch": str(torch.__version__)}, out / "model.pt")
    return FitResult(model, history, recipe, elapsed)


# ---------------------------------------------------------------------------- a run, trained once
RUN_RECORD = "run.json"  # in a fit_cached() folder: what was trained, with which code, and what it gave
_RUN_FILES = ("metrics.csv", "checkpoint.pt", "model.pt", RUN_RECORD)
# The course's own SMOKE runs of the Week 3 recipes (model.pt, metrics.csv, run.json each), made by the reference
# solution with `python -m vitcourse.train course-runs` and shipped, so that what runs the notebook on the reference
# code (the course's CI, an instructor) reads them instead of training for two minutes: only when asked, with
# VIT_COURSE_RUNS=1 (or the folder that holds them). A student's notebook trains their own code.
SHIPPED_RUNS = Path(__file__).resolve().parents[2] / "data" / "runs"
COURSE_RUNS_ENV = "VIT_COURSE_RUNS"
COURSE_RECIPES = ("digits-cnn", "digits-vit", "digits-deit")  # the Week 3 notebook's runs; the deit's teacher: the cnn


def _digest(*parts: Any) -> str:
    import hashlib

    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, torch.Tensor):
            h.update(str((part.dtype, tuple(part.shape))).encode())
            flat = part.detach().cpu().contiguous().reshape(-1)  # a 0-d tensor cannot be viewed as bytes
            h.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
        elif isinstance(part, bytes):
            h.update(part)
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()


def run_fingerprint(recipe: Recipe, data: Data, teacher: nn.Module | None = None, seed: int = 0) -> str:
    """What decides a ``fit``: the recipe, the seed, the data (every image and label), the teacher's weights,
    the torch version and the source of every module of the ``vitcourse`` package loaded in this process
    (everything ``fit`` can run, and a little more: a change to any of them, the student's own code included,
    means a new run; another week's module that was never imported does not)."""
    loaded = {m.__file__ for name, m in list(sys.modules.items())
              if (name == "vitcourse" or name.startswith("vitcourse.")) and getattr(m, "__file__", None)}
    code = [(Path(f).name, Path(f).read_bytes()) for f in sorted(loaded)]
    teacher_state = [] if teacher is None else [v for _, v in sorted(teacher.state_dict().items())]
    return _digest(asdict(recipe), seed, torch.__version__, data.source, data.x_train, data.y_train, data.x_test,
                   data.y_test, *teacher_state, *[name for name, _ in code], *[text for _, text in code])


def run_config(recipe: Recipe, data: Data, teacher: nn.Module | None = None, seed: int = 0) -> str:
    """What decides a ``fit`` but the code: the recipe, the seed, the data (every image and label) and the teacher's
    weights. A course run (:func:`course_run`) is used only for a run whose ``run_config`` is its own."""
    teacher_state = [] if teacher is None else [v for _, v in sorted(teacher.state_dict().items())]
    return _digest(asdict(recipe), seed, data.source, data.x_train, data.y_train, data.x_test, data.y_test,
                   *teacher_state)


def course_runs_dir() -> Path | None:
    """The folder of the course's own runs when ``$VIT_COURSE_RUNS`` asks for them ("1": the ones shipped in the
    repository's ``data/runs/``; or a folder), else None."""
    value = os.environ.get(COURSE_RUNS_ENV, "").strip()
    if value.lower() in ("", "0", "false", "no", "off"):
        return None
    return SHIPPED_RUNS if value.lower() in ("1", "true", "yes", "on") else Path(value).expanduser()


def course_run(recipe: Recipe, data: Data, *, teacher: nn.Module | None = None, seed: int = 0,
               folder: Path | None = None) -> FitResult | None:
    """The course's own run of exactly this recipe, seed, data and teacher from ``folder`` (default:
    :func:`course_runs_dir`/<recipe>), or None when there is none (or it was made for another configuration)."""
    base = course_runs_dir() if folder is None else folder.parent
    if base is None:
        return None
    folder = folder or base / recipe.name
    try:
        record = json.loads((folder / RUN_RECORD).read_text())
        if record.get("config") != run_config(recipe, data, teacher, seed):
            return None
        saved = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
        model = recipe.build_model(len(data.classes))
        model.load_state_dict(saved["state_dict"])
    except (OSError, ValueError, KeyError, RuntimeError):
        return None
    return FitResult(model.eval(), record["history"], recipe, record["seconds"], cached=True,
                     wall_seconds=record["wall_seconds"], cpu_seconds=record["cpu_seconds"], threads=record["threads"],
                     source="course")


def fit_cached(recipe: Recipe, data: Data, out_dir: str | Path, *, teacher: nn.Module | None = None, seed: int = 0,
               progress: bool = True) -> FitResult:
    """``fit(recipe, data, ...)`` into ``out_dir``, or, when ``out_dir`` already holds a finished ``fit`` of
    exactly this run (the same :func:`run_fingerprint`: recipe, seed, data, teacher, torch and the package's
    code), that run read back instead of training again: the trained weights, the history and the wall and
    CPU time it took (``result.cached`` says which). Deterministic on the CPU, so nothing is lost but time.

    A new run trains in a temporary folder next to ``out_dir`` and replaces the folder's earlier files
    (``metrics.csv``, ``checkpoint.pt``, ``model.pt``, TensorBoard events, ``run.json``) only when it has
    finished: its curves are this run's only, and a run that fails (an unfinished task, an interruption)
    leaves the earlier run in place.

    With ``$VIT_COURSE_RUNS`` set, a run the course ships for exactly this recipe, seed, data and teacher
    (:func:`course_run`) is read instead of training, and its files are copied to ``out_dir``
    (``result.source`` is "course"): the course's CI runs the reference notebook so.
    """
    import shutil
    import tempfile

    out = Path(out_dir)
    fingerprint = run_fingerprint(recipe, data, teacher, seed)
    try:
        record = json.loads((out / RUN_RECORD).read_text())
        if record.get("fingerprint") == fingerprint:
            saved = torch.load(out / "model.pt", map_location="cpu", weights_only=True)
            model = recipe.build_model(len(data.classes))
            model.load_state_dict(saved["state_dict"])
            return FitResult(model.eval(), record["history"], recipe, record["seconds"], cached=True,
                             wall_seconds=record["wall_seconds"], cpu_seconds=record["cpu_seconds"],
                             threads=record["threads"], source="cache")
    except (OSError, ValueError, KeyError, RuntimeError):
        pass  # nothing usable there: train
    out.parent.mkdir(parents=True, exist_ok=True)
    course = course_run(recipe, data, teacher=teacher, seed=seed)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-training-", dir=out.parent))
    try:
        if course is not None:  # the course's run, copied as a finished training would leave it
            for name in ("metrics.csv", "model.pt", RUN_RECORD):
                shutil.copyfile(course_runs_dir() / recipe.name / name, work / name)
            result = course
        else:
            wall, cpu = time.perf_counter(), time.process_time()
            result = fit(recipe, data, teacher=teacher, out_dir=work, seed=seed, progress=progress)
            result.wall_seconds, result.cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
            result.threads = torch.get_num_threads()
            record = {"recipe": recipe.name, "fingerprint": fingerprint,
                      "config": run_config(recipe, data, teacher, seed), "recipe_fields": asdict(recipe),
                      "seed": seed, "torch": str(torch.__version__),
                      "history": result.history, "seconds": result.seconds, "wall_seconds": result.wall_seconds,
                      "cpu_seconds": result.cpu_seconds, "threads": result.threads,
                      "when": time.strftime("%Y-%m-%d %H:%M:%S")}
            (work / RUN_RECORD).write_text(json.dumps(record))
        out.mkdir(parents=True, exist_ok=True)
        for old in [*(out / name for name in _RUN_FILES), *out.glob("events.out.tfevents.*")]:
            old.unlink(missing_ok=True)
        for new in sorted(work.iterdir(), key=lambda p: p.name == RUN_RECORD):  # run.json last: recorded or not
            os.replace(new, out / new.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def make_course_runs(out: Path = SHIPPED_RUNS, seed: int = 0) -> dict[str, FitResult]:
    """Train the Week 3 notebook's three SMOKE runs (:data:`COURSE_RECIPES`: the CNN teacher, the ViT from scratch,
    the ViT distilled from that teacher) with this package's code into ``out/<recipe>/`` and keep what the notebook
    reads (``model.pt``, ``metrics.csv``, ``run.json``). Run it with the reference solution: see data/README.md."""
    data = load_data("digits", seed=seed)
    results: dict[str, FitResult] = {}
    for name in COURSE_RECIPES:
        folder = out / name
        teacher = results["digits-cnn"].model if RECIPES[name].arch == "deit" else None
        for old in folder.glob("*") if folder.is_dir() else ():
            old.unlink()  # train, never read an earlier run back
        results[name] = fit_cached(RECIPES[name], data, folder, teacher=teacher, seed=seed, progress=True)
        for extra in [folder / "checkpoint.pt", *folder.glob("events.out.tfevents.*")]:
            extra.unlink(missing_ok=True)  # the notebook reads model.pt, metrics.csv and run.json
        print(json.dumps({"recipe": name, "test_acc": results[name].test_acc,
                          "cpu_seconds": round(results[name].cpu_seconds, 1)}), flush=True)
    return results


def load_model(path: str | Path) -> nn.Module:
    """A ``model.pt`` written by ``fit`` (e.g. the teacher), in eval mode on the CPU."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    cls = {"vit": VisionTransformer, "deit": DistilledVisionTransformer, "cnn": ConvNet}[saved["arch"]]
    model = cls(**saved["config"])
    model.load_state_dict(saved["state_dict"])
    return model.eval()


# ---------------------------------------------------------------------------- benchmark
def benchmark(recipe: Recipe, *, runtime: Runtime | None = None, steps: int = 20, warmup: int = 3,
              batch_size: int | None = None, compile_model: bool | None = None) -> dict[str, float]:
    """Train ``recipe`` on random CIFAR-10-shaped tensors (uint8 (N, 3, 32, 32), 10 classes) through the
    whole pipeline (augmentation on the device, mixing, model, loss, clipping, fused AdamW, scheduler) and
    time it: ``warmup`` steps untimed (compilation, autotuning), then ``steps`` timed.

    Returns:
        ``{"images_per_s": all processes together, "epoch_seconds": for 50,000 images, "batch_size": per
        process, "steps": steps, "world_size": processes}``.
    """
    runtime = runtime or setup_runtime()
    device = runtime.device
    speed_settings(device)
    batch = batch_size or recipe.batch_size
    torch.manual_seed(0)
    n = batch * runtime.world_size * (warmup + steps)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (n,))
    data = Data(images[:batch], labels[:batch], images[:batch], labels[:batch], tuple(map(str, range(10))), "random")
    model = recipe.build_model(10).to(device)
    if recipe.channels_last and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_adamw(model, recipe.lr, recipe.weight_decay)
    scheduler = warmup_cosine_scheduler(optimizer, 10 * (warmup + steps), warmup + steps)
    mix = make_mix(recipe, 10)
    criterion = ClassificationLoss()
    compile_now = (recipe.compile and device.type == "cuda") if compile_model is None else compile_model
    trained = wrap(model, runtime, compile_now)
    amp = recipe.amp and device.type == "cuda"

    def run(count: int, offset: int) -> float:
        part = slice(offset, offset + count * batch * runtime.world_size)
        batches, _ = make_batches(recipe, replace(data, x_train=images[part], y_train=labels[part]), runtime)
        if device.type == "cuda":
            torch.cuda.synchronize()
        tick = time.perf_counter()
        train_one_epoch(trained, batches, optimizer, criterion, scheduler=scheduler, mix=mix,
                        clip_grad=recipe.clip_grad, amp=amp, device=device, progress=False)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - tick

    if warmup:
        run(warmup, 0)
    seconds = run(steps, warmup * batch * runtime.world_size)
    if runtime.world_size > 1:  # the slowest process sets the pace
        slowest = torch.tensor([seconds], device=device)
        dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
        seconds = float(slowest)
    images_per_s = steps * batch * runtime.world_size / seconds
    return {"images_per_s": images_per_s, "epoch_seconds": 50_000 / images_per_s, "batch_size": batch,
            "steps": steps, "world_size": runtime.world_size}


# ---------------------------------------------------------------------------- fine-tuning
@dataclass
class FinetuneConfig:
    """Fine-tuning a pretrained timm model on Food-101 (FULL), or its stand-ins (SMOKE)."""

    mode: str  # "linear_probe" or "full"
    model: str = "vit_base_patch16_224.augreg2_in21k_ft_in1k"
    library: str = "timm"  # "timm" (model) or "transformers" (hf_model, ViTForImageClassification)
    hf_model: str = "google/vit-base-patch16-224"  # ImageNet-21k pretrained, ImageNet-1k fine-tuned (original ViT)
    dataset: str = "food101"
    epochs: int = field(default_factory=lambda: SCALE.pick(smoke=2, full=3))
    batch_size: int = field(default_factory=lambda: SCALE.pick(smoke=32, full=128))
    lr: float | None = None  # None: 1e-3 for a linear probe, 1e-4 for full fine-tuning (AdamW, batch 128)
    weight_decay: float = 0.05
    warmup_epochs: float = 0.3
    label_smoothing: float = 0.1
    image_size: int = field(default_factory=lambda: SCALE.pick(smoke=112, full=224))
    n_train: int | None = field(default_factory=lambda: SCALE.pick(smoke=96, full=None))
    n_test: int | None = field(default_factory=lambda: SCALE.pick(smoke=64, full=None))
    workers: int = field(default_factory=lambda: SCALE.pick(smoke=0, full=min(16, os.cpu_count() or 1)))
    amp: bool = True
    compile: bool = False

    @property
    def peak_lr(self) -> float:
        return self.lr if self.lr is not None else (1e-3 if self.mode == "linear_probe" else 1e-4)


class _OnDevice:
    """A DataLoader of [0, 1] images, moved to the device, flipped (training) and normalised there."""

    def __init__(self, loader: Any, device: torch.device, mean: torch.Tensor, std: torch.Tensor, flip: bool) -> None:
        self.loader, self.device, self.flip = loader, device, flip
        self.mean, self.std = mean.view(1, -1, 1, 1).to(device), std.view(1, -1, 1, 1).to(device)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for images, labels in self.loader:
            images = images.to(self.device, non_blocking=True)
            if self.flip:
                images = random_hflip(images)
            yield (images - self.mean) / self.std, labels.to(self.device, non_blocking=True)


def finetune(config: FinetuneConfig, *, device: str | None = None, out_dir: str | Path | None = None,
             progress: bool = True, seed: int = 0, data: Any = None, model: nn.Module | None = None) -> FitResult:
    """Fine-tune ``config.model`` on ``config.dataset`` as a linear probe or fully; evaluate after every epoch.

    At FULL scale the dataset and the pretrained weights are both required: a missing one stops the run
    before any training. ``data``: an :class:`~vitcourse.data.ImageData` already loaded (default: load
    ``config.dataset``). ``model``: fine-tune this timm model instead of loading ``config.model``; its
    classifier is reset when it does not have one output per class.
    """
    from torch.utils.data import DataLoader

    from vitcourse.data import load_dataset

    runtime = setup_runtime(device)
    dev = runtime.device
    speed_settings(dev)
    torch.manual_seed(seed)
    if data is None:
        data = load_dataset(config.dataset, config.n_train, config.n_test, seed=seed, image_size=config.image_size)
    if model is None and config.library == "transformers":
        model, _ = hf_finetune_model(config.hf_model, len(data.classes), config.image_size)
    elif model is None:
        model, _ = finetune_model(config.model, len(data.classes), config.image_size)
    elif getattr(model, "num_classes", len(data.classes)) != len(data.classes):
        model.reset_classifier(len(data.classes))
    prepare_finetune(model, config.mode)
    trainable, total = count_parameters(model)
    print(f"{config.mode}: {trainable:,} of {total:,} parameters trainable ({trainable / total:.2%})")
    model = model.to(dev)
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    mean = torch.tensor(cfg.get("mean", (0.5, 0.5, 0.5)), dtype=torch.float32)
    std = torch.tensor(cfg.get("std", (0.5, 0.5, 0.5)), dtype=torch.float32)
    loader_args = dict(batch_size=config.batch_size, num_workers=config.workers, pin_memory=dev.type == "cuda",
                       persistent_workers=config.workers > 0)
    train = _OnDevice(DataLoader(data.train, shuffle=True, drop_last=True, **loader_args), dev, mean, std, flip=True)
    test = _OnDevice(DataLoader(data.test, **loader_args), dev, mean, std, flip=False)
    optimizer = make_adamw(model, config.peak_lr, config.weight_decay)
    total_steps = config.epochs * len(train)
    scheduler = warmup_cosine_scheduler(optimizer, total_steps, min(round(config.warmup_epochs * len(train)),
                                                                    total_steps - 1))
    criterion = ClassificationLoss(config.label_smoothing)
    trained = torch.compile(model) if config.compile and dev.type == "cuda" else model
    amp = config.amp and dev.type == "cuda"
    out = Path(out_dir) if out_dir is not None else None
    logger = MetricLogger(out) if out is not None else None
    history, step, elapsed = [], 0, 0.0
    try:
        for epoch in range(config.epochs):
            tick = time.perf_counter()
            result = train_one_epoch(trained, train, optimizer, criterion, scheduler=scheduler, clip_grad=1.0, amp=amp,
                                     device=dev, logger=logger, step=step, log_every=20, progress=progress,
                                     desc=f"{config.mode} epoch {epoch + 1}/{config.epochs}")
            step = result["step"]
            scores = evaluate(model, test, device=dev, amp=amp, progress=progress)
            elapsed += time.perf_counter() - tick
            history.append({"epoch": epoch + 1, "step": step, "train_loss": result["loss"], "train_acc": result["acc"],
                            "test_loss": scores["loss"], "test_acc": scores["acc"], "seconds": elapsed,
                            "images_per_s": result["images"] / result["seconds"]})
            if logger is not None:
                logger.log(step, {"test/loss": scores["loss"], "test/acc": scores["acc"], "epoch": epoch + 1})
            print(f"{config.mode} epoch {epoch + 1}/{config.epochs}: train loss {result['loss']:.3f}, "
                  f"test acc {scores['acc']:.4f} on {scores['images']} {data.source} images, {elapsed:.0f} s",
                  flush=True)
    finally:
        if logger is not None:
            logger.close()
    recipe = Recipe(f"finetune-{config.mode}", config.dataset, "timm", {"name": config.model}, config.epochs,
                    config.batch_size, config.peak_lr)
    return FitResult(model.eval(), history, recipe, elapsed)


# ---------------------------------------------------------------------------- command line
def _recipe(args: argparse.Namespace) -> Recipe:
    name = args.recipe or SCALE.pick(smoke="digits-vit", full="cifar10-vit")
    if name not in RECIPES:
        raise SystemExit(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    recipe = RECIPES[name]
    changes = {k: v for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size), ("lr", args.lr),
                                 ("init", getattr(args, "init", None))) if v}
    return replace(recipe, **changes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vitcourse.train", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("fit", "benchmark"):
        p = sub.add_parser(name)
        p.add_argument("recipe", nargs="?", help=f"one of {', '.join(RECIPES)} (default: digits-vit at SMOKE "
                       "scale, cifar10-vit at FULL)")
        p.add_argument("--epochs", type=int)
        p.add_argument("--batch-size", type=int, help="per process")
        p.add_argument("--lr", type=float)
        p.add_argument("--device", choices=["cpu", "cuda"])
        p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                       help="torch.compile the model (default: as the recipe says, on CUDA only)")
    fit_p = sub.choices["fit"]
    fit_p.add_argument("--out", type=Path, help="output folder (default: runs/<recipe>)")
    fit_p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    fit_p.add_argument("--teacher", type=Path, help="model.pt of a trained teacher: distil from it")
    fit_p.add_argument("--seed", type=int, default=0)
    fit_p.add_argument("--init", choices=["default", "mimetic"],
                       help="the model's initialisation (default: as the recipe says; shapes-vit: mimetic)")
    bench_p = sub.choices["benchmark"]
    bench_p.add_argument("--steps", type=int, default=20, help="timed steps")
    bench_p.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation)")
    runs_p = sub.add_parser("course-runs", help="the Week 3 notebook's SMOKE runs, as the course ships them")
    runs_p.add_argument("--out", type=Path, default=SHIPPED_RUNS, help=f"default: {SHIPPED_RUNS}")
    ft = sub.add_parser("finetune")
    ft.add_argument("--mode", choices=["linear_probe", "full"], required=True)
    ft.add_argument("--model", default=FinetuneConfig.model, help="the timm model")
    ft.add_argument("--library", choices=["timm", "transformers"], default="timm",
                    help="transformers: fine-tune --hf-model as a ViTForImageClassification instead")
    ft.add_argument("--hf-model", default=FinetuneConfig.hf_model)
    ft.add_argument("--epochs", type=int)
    ft.add_argument("--batch-size", type=int)
    ft.add_argument("--lr", type=float)
    ft.add_argument("--out", type=Path)
    ft.add_argument("--device", choices=["cpu", "cuda"])
    args = parser.parse_args(argv)

    if args.command == "course-runs":
        os.environ.pop(COURSE_RUNS_ENV, None)  # train them, never read them back
        make_course_runs(args.out)
        return 0
    if args.command == "finetune":
        config = FinetuneConfig(args.mode, args.model, args.library, args.hf_model)
        config = replace(config, **{k: v for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size),
                                                      ("lr", args.lr)) if v})
        suffix = "" if args.library == "timm" else "-transformers"
        result = finetune(config, device=args.device,
                          out_dir=args.out or Path("runs") / f"finetune-{args.mode}{suffix}")
        print(json.dumps({"mode": args.mode, "library": args.library, "test_acc": result.test_acc,
                          "seconds": round(result.seconds, 1)}))
        return 0

    recipe = _recipe(args)
    runtime = setup_runtime(args.device)
    try:
        if args.command == "benchmark":
            result = benchmark(recipe, runtime=runtime, steps=args.steps, warmup=args.warmup,
                               batch_size=args.batch_size, compile_model=args.compile)
            name = torch.cuda.get_device_name(runtime.device) if runtime.device.type == "cuda" else "CPU"
            _say(runtime, f"benchmark {recipe.name} on {runtime.world_size} x {runtime.device.type} ({name}), "
                          f"batch {result['batch_size']} per process, {result['steps']} steps: "
                          f"{result['images_per_s']:,.1f} images/s, one 50,000-image epoch "
                          f"{result['epoch_seconds']:,.1f} s")
            _say(runtime, json.dumps(result))
            return 0
        if runtime.world_size > 1 and not runtime.main:
            dist.barrier()  # rank 0 downloads (when it must) before the others read the cache
        data = load_data(recipe.dataset, seed=args.seed, verbose=runtime.main)  # fails here, before any work
        if runtime.world_size > 1 and runtime.main:
            dist.barrier()
        teacher = load_model(args.teacher) if args.teacher else None
        if recipe.arch == "deit" and teacher is None:
            raise SystemExit("the deit recipes distil from a teacher: pass --teacher runs/<dataset>-cnn/model.pt")
        out = args.out or Path("runs") / recipe.name
        _say(runtime, f"training {recipe.name} on {runtime.world_size} x {runtime.device}; writing to {out}")
        _say(runtime, json.dumps(asdict(recipe)))
        result = fit(recipe, data, runtime=runtime, teacher=teacher, out_dir=out, resume=args.resume, seed=args.seed,
                     verbose=True, compile_model=args.compile)
        target = recipe.target_acc
        summary = {"recipe": recipe.name, "test_acc": result.test_acc, "epochs": recipe.epochs,
                   "seconds": round(result.seconds, 1), f"epochs_to_{target}": result.epochs_to(target)}
        _say(runtime, json.dumps(summary))
        return 0
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
