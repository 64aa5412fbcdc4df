"""Week 3 · The training loop: train one epoch, evaluate, log, checkpoint and resume.

Shapes: B batch, C x H x W images, K classes. A loader is any iterable of ``(images (B, C, H, W),
labels (B,) int64)`` batches: a ``DataLoader``, or the course's on-device
:class:`~vitcourse.batches.DeviceBatches`.

One training step, in this order:

1. move the batch to the device; with a ``mix`` (e.g. :class:`~vitcourse.augment.MixupCutmix`)
   ``images, targets = mix(images, labels)``, else ``targets = labels``;
2. ``outputs = model(images)`` and ``loss = criterion(images, outputs, targets)``, both under
   ``torch.autocast("cuda", dtype=torch.bfloat16)`` when ``amp`` is on and the device is CUDA (on
   the CPU ``amp`` changes nothing); the criterion gets the images too, so a distillation loss can
   ask its teacher (DeiT's convention);
3. zero the gradients, ``loss.backward()``;
4. with ``clip_grad``, rescale all gradients together so that their global L2 norm is at most
   ``clip_grad`` (``torch.nn.utils.clip_grad_norm_``), *after* backward and *before* the step;
5. ``optimizer.step()``, then ``scheduler.step()`` (the schedule counts optimizer steps).

bfloat16 has float32's exponent range, so unlike float16 it needs no gradient scaler.

A checkpoint holds everything the next step depends on: the model's weights, the optimizer's state
(AdamW's moment estimates and step counts), the scheduler's step, the epoch and global step, and the
state of every random generator (Python's, NumPy's, torch's CPU and CUDA generators: they decide
the data order, the augmentations, Mixup's lambda and permutation, dropout). Restoring all of it
makes the next steps' losses identical to those of a run that never stopped.
"""

from __future__ import annotations

import csv
import os
import random
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from vitcourse.augment import soft_target_cross_entropy

Criterion = Callable[[Tensor, Any, Tensor], Tensor]  # criterion(images, outputs, targets) -> 0-d loss


class ClassificationLoss:
    """The plain criterion: ``criterion(images, logits, targets)`` is cross-entropy with label smoothing
    ``smoothing`` for (B,) labels, and :func:`~vitcourse.augment.soft_target_cross_entropy` for (B, K)
    soft targets (which already carry their smoothing, e.g. from MixupCutmix). The images are ignored."""

    def __init__(self, smoothing: float = 0.0) -> None:
        self.smoothing = smoothing

    def __call__(self, images: Tensor, outputs: Tensor, targets: Tensor) -> Tensor:
        if targets.ndim == 2:
            return soft_target_cross_entropy(outputs, targets)
        return F.cross_entropy(outputs.float(), targets, label_smoothing=self.smoothing)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel (or torch.compile) wrapper; the model itself otherwise."""
    model = getattr(model, "module", model)  # DistributedDataParallel
    return getattr(model, "_orig_mod", model)  # torch.compile


def predictions(outputs: Tensor | tuple[Tensor, Tensor]) -> Tensor:
    """(B,) predicted classes; a (cls, dist) pair votes with the mean of its logits."""
    if isinstance(outputs, (tuple, list)):
        outputs = (outputs[0] + outputs[1]) / 2
    return outputs.argmax(dim=-1)


def autocast(device: torch.device, amp: bool):
    """bfloat16 autocast on CUDA when ``amp``; a no-op context otherwise (also on the CPU)."""
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def _device(model: nn.Module, device: torch.device | str | None) -> torch.device:
    return torch.device(device) if device is not None else next(model.parameters()).device


# ---------------------------------------------------------------------------- logging
class MetricLogger:
    """Scalars to ``<log_dir>/metrics.csv`` and to TensorBoard (``tensorboard --logdir <log_dir>``).

    The CSV has the header ``step,tag,value`` and one row per scalar, in the order logged, e.g.
    ``120,train/loss,0.8312``. A logger opened on a folder that already has a ``metrics.csv`` (a
    resumed run) appends to it without a second header. ``log`` writes through at once (the file
    is flushed), so a crashed run keeps its curves. With ``tensorboard=True`` every scalar also goes
    to a ``torch.utils.tensorboard.SummaryWriter(log_dir)`` as ``add_scalar(tag, value, step)``.
    """

    def __init__(self, log_dir: str | Path, tensorboard: bool = True) -> None:
        self.log_dir = Path(log_dir)
        ### BEGIN SOLUTION [Week 3 · Task 3.5]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        path = self.log_dir / "metrics.csv"
        new = not path.exists() or path.stat().st_size == 0
        self._file = open(path, "a", newline="")
        self._csv = csv.writer(self._file)
        if new:
            self._csv.writerow(["step", "tag", "value"])
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # imported here: it costs a second

            self._writer = SummaryWriter(str(self.log_dir))
        ### END SOLUTION

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """One row ``step,tag,value`` (and one TensorBoard scalar) per entry of ``metrics``."""
        ### BEGIN SOLUTION [Week 3 · Task 3.5]
        for tag, value in metrics.items():
            self._csv.writerow([step, tag, float(value)])
            if self._writer is not None:
                self._writer.add_scalar(tag, float(value), step)
        self._file.flush()
        ### END SOLUTION

    def close(self) -> None:
        ### BEGIN SOLUTION [Week 3 · Task 3.5]
        self._file.close()
        if self._writer is not None:
            self._writer.close()
        ### END SOLUTION

    def __enter__(self) -> MetricLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_metrics(path: str | Path) -> dict[str, list[tuple[int, float]]]:
    """A ``metrics.csv`` (or the folder holding it) back as ``{tag: [(step, value), ...]}``, for plotting."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.csv"
    series: dict[str, list[tuple[int, float]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            series.setdefault(row["tag"], []).append((int(row["step"]), float(row["value"])))
    return series


# ---------------------------------------------------------------------------- train and evaluate
def train_one_epoch(model: nn.Module, loader: Iterable, optimizer: torch.optim.Optimizer, criterion: Criterion, *,
                    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None, mix: Callable | None = None,
                    clip_grad: float | None = None, amp: bool = False, device: torch.device | str | None = None,
                    logger: MetricLogger | None = None, step: int = 0, log_every: int = 50,
                    progress: bool = True, desc: str = "train") -> dict[str, float]:
    """One pass over ``loader`` in training mode (the steps in the module docstring).

    Args:
        model: put in training mode here, whatever mode it arrives in (e.g. eval mode after
            :func:`evaluate`), so dropout and batch norm train.
        loader: yields (images, labels).
        optimizer, scheduler: the scheduler (optional) is stepped after every optimizer step.
        criterion: ``criterion(images, outputs, targets)`` -> 0-d loss.
        mix: optional ``mix(images, labels) -> (images, targets)``.
        clip_grad: max global gradient L2 norm; None or 0: no clipping.
        amp: bfloat16 autocast on CUDA (ignored on the CPU).
        device: where the batches go; None: the model's device.
        logger: when given, after every ``log_every``-th step (counting globally, from ``step``) logs
            ``{"train/loss": that step's loss, "train/lr": the learning rate that step used}`` at the
            new global step number.
        step: the global step count before this epoch.
        progress: show a tqdm bar (with the running loss).

    Returns:
        ``{"loss": mean loss per image, "acc": accuracy on the (mixed) training batches, "step": the
        global step after this epoch, "images": images seen, "seconds": wall time}``. The loss is
        weighted by batch size (a short last batch counts less); a prediction is right when it is the
        target's class (the argmax of a soft target); a (cls, dist) output predicts with the mean of
        its logits.
    """
    ### BEGIN SOLUTION [Week 3 · Task 3.5]
    device = _device(model, device)
    model.train()
    start = time.perf_counter()
    loss_sum = torch.zeros((), device=device)  # summed on the device: no sync per step
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    bar = tqdm(loader, desc=desc, leave=False, disable=not progress, mininterval=1.0)
    for images, labels in bar:
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        targets = labels
        if mix is not None:
            images, targets = mix(images, labels)
        with autocast(device, amp):
            outputs = model(images)
            loss = criterion(images, outputs, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad:
            nn.utils.clip_grad_norm_(model.parameters(), clip_grad)  # after backward, before the step
        lr = optimizer.param_groups[-1]["lr"]  # the rate this step uses
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        step += 1
        batch = labels.shape[0]
        seen += batch
        loss_sum += loss.detach().float() * batch
        target_class = targets.argmax(dim=-1) if targets.ndim == 2 else targets
        correct += (predictions(outputs) == target_class).sum()
        if logger is not None and step % log_every == 0:
            value = loss.item()
            logger.log(step, {"train/loss": value, "train/lr": lr})
            bar.set_postfix(loss=f"{value:.3f}")
    return {"loss": float(loss_sum) / max(seen, 1), "acc": float(correct) / max(seen, 1), "step": step,
            "images": seen, "seconds": time.perf_counter() - start}
    ### END SOLUTION


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, *, device: torch.device | str | None = None, amp: bool = False,
             progress: bool = False, desc: str = "eval") -> dict[str, float]:
    """Loss and accuracy of ``model`` on ``loader``, in eval mode, without gradients (no forward pass
    records a graph: ``torch.no_grad``).

    The model is left in eval mode. The loss is plain cross-entropy (no smoothing) on the logits; both
    are per image over the whole loader (a short last batch counts less, not as much as a full one).
    Under ``torch.distributed`` the sums are added over all processes, so every rank gets the numbers
    of the whole (sharded) test set.

    Returns:
        ``{"loss": mean cross-entropy per image, "acc": fraction right, "images": images seen}``.
    """
    ### BEGIN SOLUTION [Week 3 · Task 3.5]
    device = _device(model, device)
    model.eval()
    totals = torch.zeros(3, device=device, dtype=torch.float64)  # loss sum, correct, images
    for images, labels in tqdm(loader, desc=desc, leave=False, disable=not progress, mininterval=1.0):
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with autocast(device, amp):
            outputs = model(images)
        if isinstance(outputs, (tuple, list)):
            outputs = (outputs[0] + outputs[1]) / 2
        totals[0] += F.cross_entropy(outputs.float(), labels, reduction="sum")
        totals[1] += (outputs.argmax(dim=-1) == labels).sum()
        totals[2] += labels.shape[0]
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(totals)  # every rank saw its shard: add them up
    loss_sum, correct, seen = totals.tolist()
    return {"loss": loss_sum / max(seen, 1), "acc": correct / max(seen, 1), "images": int(seen)}
    ### END SOLUTION


# ---------------------------------------------------------------------------- checkpoints
def rng_state() -> dict:
    """The state of every random generator a training step may draw from (all as tensors and plain
    Python values, so ``torch.load(weights_only=True)`` reads it back)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": random.getstate(),
            "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` saved (the CUDA generators only when this machine has as many)."""
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def save_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None, *, epoch: int, step: int,
                    **extra: Any) -> None:
    """Save everything a resumed run needs to :func:`torch.save` file ``path``.

    The file holds a dict with the keys ``"model"`` (the state dict of :func:`unwrap` (model), so a DDP
    or compiled model saves plain names), ``"optimizer"``, ``"scheduler"`` (its state dict, or None),
    ``"epoch"`` (epochs completed), ``"step"`` (optimizer steps completed), ``"rng"``
    (:func:`rng_state`) and ``"extra"`` (the keyword arguments, e.g. the config or the history;
    tensors and plain Python values only). It is written to a temporary file first and then renamed,
    so a crash while saving never leaves a half-written checkpoint.
    """
    ### BEGIN SOLUTION [Week 3 · Task 3.5]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"model": unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict() if scheduler is not None else None,
             "epoch": epoch, "step": step, "rng": rng_state(), "extra": extra}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: the old checkpoint stays valid until the new one is complete
    ### END SOLUTION


def load_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
                    map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Restore a :func:`save_checkpoint` file into ``model`` (strict), ``optimizer`` and ``scheduler`` (when
    given) and restore every random generator, so training continues exactly where it stopped.

    Read with ``torch.load(path, map_location=map_location, weights_only=True)``: a file that holds anything
    but tensors and plain Python values (which could run code when unpickled) is refused with
    ``pickle.UnpicklingError``.

    Returns:
        ``{"epoch": ..., "step": ..., **extra}``.
    """
    ### BEGIN SOLUTION [Week 3 · Task 3.5]
    state = torch.load(path, map_location=map_location, weights_only=True)
    unwrap(model).load_state_dict(state["model"], strict=True)
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])  # last: nothing above may draw a random number after it
    return {"epoch": state["epoch"], "step": state["step"], **state["extra"]}
    ### END SOLUTION
