"""Generic probes: run inside the sandboxed worker, on the student's modules.

A probe builds what the test asks for, runs it, and returns tensors. It never judges:
the test in the grader's process compares the result with a reference it computed itself.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch
from torch import nn


def _resolve(path: str) -> Any:
    module, _, name = path.rpartition(".")
    obj = importlib.import_module(module)
    return getattr(obj, name)


def build(cls: str, init: dict | None = None, state: dict | None = None) -> nn.Module:
    """Instantiate ``cls`` (dotted path) and load ``state`` with strict=True when given."""
    model = _resolve(cls)(**(init or {}))
    if state is not None:
        missing, unexpected = [], []
        own = model.state_dict()
        missing = sorted(set(state) - set(own))
        unexpected = sorted(set(own) - set(state))
        if missing or unexpected:
            raise KeyError(
                f"parameter names differ from the contract: expected {sorted(state)}, "
                f"found {sorted(own)}"
            )
        model.load_state_dict(state, strict=True)
    return model


def _flatten(outputs: Any) -> list:
    return list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]


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
    """Build a module, call ``method`` ``calls`` times, optionally backprop.

    Returns ``{"outputs": [[out0, out1, ...] per call], "grads": {param: grad},
    "input_grads": [grad per input], "param_names": [...]}``. With ``grad_weights`` the loss
    is sum_i (outputs[i] * grad_weights[i]).sum() of the first call, so a test can check any
    gradient against a reference without trusting the student's autograd.
    """
    model = build(cls, init, state)
    model.train(train)
    args = list(args or [])
    if grad_weights is not None:
        args = [a.clone().requires_grad_(True) if torch.is_tensor(a) and a.is_floating_point()
                else a for a in args]
    fn = getattr(model, method)
    results = []
    for _ in range(calls):
        results.append(_flatten(fn(*args, **(kwargs or {}))))
    out: dict[str, Any] = {
        "outputs": [[o.detach() if torch.is_tensor(o) else o for o in r] for r in results],
        "param_names": [name for name, _ in model.named_parameters()],
    }
    if grad_weights is not None:
        loss = sum((o * w).sum() for o, w in zip(results[0], grad_weights) if w is not None)
        loss.backward()
        out["grads"] = {
            name: (p.grad if p.grad is not None else torch.zeros(0))
            for name, p in model.named_parameters()
        }
        out["input_grads"] = [
            a.grad if torch.is_tensor(a) and a.grad is not None else torch.zeros(0) for a in args
        ]
    return out
