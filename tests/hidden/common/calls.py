"""Calls that the generic ``student.fn`` / ``student.module`` cannot make: in another dtype, or with the
inputs handed back after the call. Probe code: it runs next to the student's package and only reports
what came out; the tests decide.

Use from any week's hidden suite as ``student.probe("course_probes.calls:<name>", ...)``. The student's
package is imported inside each function, never at module level (probe code is loaded before it).
"""

from __future__ import annotations

import importlib
from typing import Any

import torch


def _resolve(target: str) -> Any:
    """'augment.mixup' -> vitcourse.augment.mixup."""
    module, _, name = target.rpartition(".")
    return getattr(importlib.import_module(f"vitcourse.{module}"), name)


def _cast(value: Any, dtype: torch.dtype) -> Any:
    if torch.is_tensor(value) and value.is_floating_point():
        return value.to(dtype)
    if isinstance(value, (tuple, list)):
        return type(value)(_cast(v, dtype) for v in value)
    return value


def call_in_dtype(target: str, args: list, dtype: str, kwargs: dict | None = None) -> Any:
    """``vitcourse.<target>(*args, **kwargs)`` with every floating-point tensor argument cast to ``dtype``
    here, in the student's process (bfloat16 has no numpy type: it cannot cross the wire as itself).
    What it returned, as it returned it (the wire records the dtype)."""
    return _resolve(target)(*_cast(list(args), getattr(torch, dtype)), **(kwargs or {}))


def module_in_dtype(target: str, init: dict, args: list, dtype: str, train: bool = False) -> Any:
    """``vitcourse.<target>(**init)`` moved to ``dtype`` (``module.to(dtype)``), in eval mode unless ``train``,
    called on ``args`` cast to ``dtype``; what ``forward`` returned."""
    module = _resolve(target)(**init).to(getattr(torch, dtype)).train(train)
    return module(*_cast(list(args), getattr(torch, dtype)))


def call_keeping_inputs(target: str, args: list, kwargs: dict | None = None) -> dict:
    """``vitcourse.<target>(*args, **kwargs)`` on copies of ``args``: what it returned, and the copies as they
    are after the call (a function that promises to leave its inputs alone must hand them back unchanged)."""
    copies = [a.clone() if torch.is_tensor(a) else a for a in args]
    result = _resolve(target)(*copies, **(kwargs or {}))
    return {"result": result, "inputs": copies}
