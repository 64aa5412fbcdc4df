"""Week 3 · The learning-rate schedule: linear warmup, then cosine decay.

A schedule is a pure function of the optimizer step s (the number of optimizer steps already
taken, so the first step uses s = 0). With W warmup steps, S total steps, peak ``base_lr`` and
floor ``min_lr``:

    lr(s) = base_lr * s / W                                                      0 <= s < W
    lr(s) = min_lr + (base_lr - min_lr) * (1 + cos(pi * (s - W) / (S - W))) / 2   W <= s <= S
    lr(s) = min_lr                                                               s > S

so lr(0) = 0 (when W > 0), lr(W) = base_lr, lr(S) = min_lr. This is timm's ``CosineLRScheduler``
with ``warmup_prefix=True``, ``warmup_lr_init=0``, ``t_initial=S - W`` and ``lr_min=min_lr``,
stepped once per optimizer step.

Why warm up: at the start Adam's second-moment estimates are built from a handful of
gradients, and a transformer's attention logits and LayerNorm gains are far from where they
settle; a full-size step then can throw the model into a region it never leaves (the loss
plateaus or diverges). Why cosine: a large learning rate for most of training, then a smooth
decay that lets the weights settle into a minimum.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch.optim.lr_scheduler import LambdaLR


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, base_lr: float = 1.0,
                  min_lr: float = 0.0) -> float:
    """The learning rate at optimizer step ``step`` (the formula in the module docstring).

    Args:
        step: s >= 0, optimizer steps taken so far.
        total_steps: S, the step at which the decay reaches ``min_lr``; must be > ``warmup_steps``.
        warmup_steps: W >= 0; W = 0 starts at ``base_lr`` with no warmup.
        base_lr: the peak, reached at s = W.
        min_lr: the floor, reached at s = S and kept after it.

    Returns:
        a Python float.

    Raises:
        ValueError: when step < 0, warmup_steps < 0, or total_steps <= warmup_steps.
    """
    ### BEGIN SOLUTION [Week 3 · Task 3.1]
    if step < 0 or warmup_steps < 0:
        raise ValueError(f"step={step} and warmup_steps={warmup_steps} must be >= 0")
    if total_steps <= warmup_steps:
        raise ValueError(f"total_steps={total_steps} must be larger than warmup_steps={warmup_steps}")
    if step < warmup_steps:
        return base_lr * step / warmup_steps  # linear from 0 to base_lr
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))  # 0 -> 1, then held at 1
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
    ### END SOLUTION


def warmup_cosine_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int,
                            min_lr_ratio: float = 0.0) -> LambdaLR:
    """A ``LambdaLR`` that multiplies each parameter group's initial ``lr`` by the schedule.

    Call ``scheduler.step()`` once after every ``optimizer.step()``. Group g's learning rate at step
    s is ``warmup_cosine(s, total_steps, warmup_steps, base_lr=lr_g, min_lr=min_lr_ratio * lr_g)``.
    Its ``state_dict()`` holds the step, so a checkpoint resumes the schedule where it stopped.
    """
    factor = partial(warmup_cosine, total_steps=total_steps, warmup_steps=warmup_steps, base_lr=1.0,
                     min_lr=min_lr_ratio)
    return LambdaLR(optimizer, factor)
