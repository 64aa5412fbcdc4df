"""Generic probes: run inside the sandboxed worker, on the student's modules.

A probe builds what the test asks for, runs it, and returns tensors. It never judges: the test
in the grader's process compares the result with a reference it computed itself. These are what
:class:`vitgrade.judging.api.Student` calls; a week adds its own in ``tests/hidden/<id>/probes``.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch
from torch import nn


def resolve(path: str) -> Any:
    """The object at a dotted path: 'vitcourse.patches.patchify'."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


PLAIN = (type(None), bool, int, float, str)


def detach(value: Any) -> Any:
    """What the wire can carry back: containers walked, and any other object (a module a
    constructor returned, say) replaced by its description. Tensors stay as they are: the wire
    records their facts (dtype, graph, device, contiguity) before it sends their numbers."""
    if torch.is_tensor(value):
        return value
    if isinstance(value, tuple):
        return tuple(detach(v) for v in value)
    if isinstance(value, list):
        return [detach(v) for v in value]
    if isinstance(value, dict):
        return {str(k): detach(v) for k, v in value.items()}
    if isinstance(value, PLAIN) or type(value).__module__ == "numpy":
        return value
    return f"<{type(value).__name__} object>"


def build(cls: str, init: dict | None = None, state: dict | None = None) -> nn.Module:
    """Instantiate ``cls`` (dotted path) and load ``state`` with strict=True when given."""
    model = resolve(cls)(**(init or {}))
    if state is not None:
        own = model.state_dict()
        if set(state) != set(own):
            raise KeyError(f"parameter names differ from the contract: expected {sorted(state)}, "
                           f"found {sorted(own)}")
        model.load_state_dict(state, strict=True)
    return model


def call(target: str, args: list | None = None, kwargs: dict | None = None) -> Any:
    """``target(*args, **kwargs)`` for a function or class of the student's package."""
    return detach(resolve(target)(*(args or []), **(kwargs or {})))


def run_module(
    cls: str,
    init: dict | None = None,
    state: dict | None = None,
    args: list | None = None,
    kwargs: dict | None = None,
    method: str = "forward",
    train: bool = False,
    calls: int = 1,
    grad_weights: list | None = None,
) -> dict:
    """Build a module, call ``method`` ``calls`` times, optionally backpropagate.

    Returns ``{"outputs": [what each call returned], "param_names": [...]}`` and, with
    ``grad_weights``, ``"grads": {param: grad}`` and ``"input_grads": [grad per input]``: the loss
    is sum_i (outputs[i] * grad_weights[i]).sum() over the first call's outputs (a tuple's items,
    or the one tensor), so a test can check any gradient against a reference without trusting the
    student's autograd.
    """
    model = build(cls, init, state)
    model.train(train)
    args = list(args or [])
    if grad_weights is not None:
        args = [a.clone().requires_grad_(True) if torch.is_tensor(a) and a.is_floating_point()
                else a for a in args]
    fn = getattr(model, method)
    results = [fn(*args, **(kwargs or {})) for _ in range(calls)]
    out: dict[str, Any] = {"outputs": [detach(r) for r in results],
                           "param_names": [name for name, _ in model.named_parameters()]}
    if grad_weights is not None:
        first = results[0] if isinstance(results[0], (tuple, list)) else [results[0]]
        loss = sum((o * w).sum() for o, w in zip(first, grad_weights) if w is not None)
        loss.backward()
        out["grads"] = {name: (p.grad if p.grad is not None else torch.zeros(0))
                        for name, p in model.named_parameters()}
        out["input_grads"] = [a.grad if torch.is_tensor(a) and a.grad is not None else torch.zeros(0)
                              for a in args]
    return out
