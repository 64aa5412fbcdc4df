"""Plain-data messages between the grader and the sandboxed student process.

Values cross the process boundary as JSON plus one ``.npz`` file of arrays, loaded with
``allow_pickle=False``: nothing the student's process writes can run code in the grader or
smuggle an object that "compares equal to anything". Supported values: None, bool, int,
float, str, lists/tuples, dicts with str keys, numpy arrays and torch tensors (sent as arrays).

A torch tensor travels with what it was in the sending process: its dtype, ``requires_grad``, the
name of its ``grad_fn``, device, contiguity and shape (:func:`tensor_facts`). The grader reads them
with :func:`meta` on the array it received, so a promise such as "float32 features with no graph"
can be checked even though only plain numbers cross the boundary. They are what the student's
process reported: data for the judge to check, like every value here.
"""

from __future__ import annotations

import json
import math
import sys
import weakref
from pathlib import Path
from typing import Any

import numpy as np

ARRAY_TAG = "__array__"
META_TAG = "__tensor__"  # next to ARRAY_TAG: what the array was as a torch tensor
TUPLE_TAG = "__tuple__"
FLOAT_TAG = "__float__"  # nan/inf, which strict JSON cannot carry
MAX_ARRAYS = 10_000


def _to_numpy(value: Any) -> np.ndarray | None:
    if isinstance(value, np.ndarray):
        return value
    try:
        import torch
    except ImportError:  # the grader never needs torch to *decode*
        return None
    if isinstance(value, torch.Tensor):
        # Call the base-class methods, so a Tensor subclass cannot override the conversion.
        plain = torch.Tensor.detach(value)
        plain = torch.Tensor.cpu(plain)
        if plain.dtype == torch.bfloat16:
            plain = torch.Tensor.float(plain)
        return np.array(torch.Tensor.numpy(plain), copy=True)
    return None


def tensor_facts(tensor: Any) -> dict:
    """What a tensor is, beyond its numbers, read through the base class (a subclass cannot lie
    about it by overriding a property): dtype, requires_grad, grad_fn, device, contiguity, shape."""
    import torch

    grad_fn = torch.Tensor.grad_fn.__get__(tensor)
    return {"dtype": str(torch.Tensor.dtype.__get__(tensor)),
            "requires_grad": bool(torch.Tensor.requires_grad.__get__(tensor)),
            "grad_fn": None if grad_fn is None else type(grad_fn).__name__,
            "device": str(torch.Tensor.device.__get__(tensor)),
            "contiguous": bool(torch.Tensor.is_contiguous(tensor)),
            "shape": [int(s) for s in torch.Tensor.size(tensor)]}


def _is_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def encode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """Turn ``value`` into JSON-able data, moving arrays into ``arrays``."""
    array = _to_numpy(value)
    if array is not None:
        key = f"a{len(arrays)}"
        arrays[key] = np.require(array, requirements="C")  # keeps a 0-d array 0-d
        if _is_tensor(value):
            return {ARRAY_TAG: key, META_TAG: tensor_facts(value)}
        return {ARRAY_TAG: key}
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else {FLOAT_TAG: repr(value)}
    if isinstance(value, tuple):
        return {TUPLE_TAG: [encode(v, arrays) for v in value]}
    if isinstance(value, list):
        return [encode(v, arrays) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"dict keys must be str, got {type(k).__name__}")
            out[k] = encode(v, arrays)
        return out
    raise TypeError(f"cannot send a value of type {type(value).__name__}")


# The facts of each array the grader received, by the array's id while it lives (see meta()).
_FACTS: dict[int, dict] = {}


def meta(array: Any) -> dict:
    """The facts (:func:`tensor_facts`) of an array that arrived as a torch tensor; KeyError for
    any other array (one that was computed from it, a numpy array the student sent, a slice)."""
    facts = _FACTS.get(id(array))
    if facts is None or facts["array"]() is not array:
        raise KeyError("this array did not arrive as a tensor (tensor facts travel with the array the "
                       "student's process returned, not with a slice or a copy of it)")
    return {k: v for k, v in facts.items() if k != "array"}


def _remember(array: np.ndarray, facts: Any) -> np.ndarray:
    if isinstance(facts, dict):
        key = id(array)
        _FACTS[key] = {**facts, "array": weakref.ref(array, lambda _ref: _FACTS.pop(key, None))}
    return array


def decode(data: Any, arrays: dict[str, np.ndarray], as_tensor: bool = False) -> Any:
    if isinstance(data, dict):
        if ARRAY_TAG in data and set(data) <= {ARRAY_TAG, META_TAG}:
            array = arrays[data[ARRAY_TAG]]
            if as_tensor:
                import torch

                return torch.from_numpy(np.array(array, copy=True))
            return _remember(array, data.get(META_TAG))
        if set(data) == {TUPLE_TAG}:
            return tuple(decode(v, arrays, as_tensor) for v in data[TUPLE_TAG])
        if set(data) == {FLOAT_TAG}:
            return float(data[FLOAT_TAG])
        return {k: decode(v, arrays, as_tensor) for k, v in data.items()}
    if isinstance(data, list):
        return [decode(v, arrays, as_tensor) for v in data]
    return data


def write_message(path: Path, value: Any) -> None:
    """Write ``value`` as ``path.json`` + ``path.npz``."""
    arrays: dict[str, np.ndarray] = {}
    payload = encode(value, arrays)
    np.savez(path.with_suffix(".npz"), **arrays)
    path.with_suffix(".json").write_text(json.dumps(payload))


def read_message(path: Path, as_tensor: bool = False) -> Any:
    """Read what ``write_message`` wrote; arrays are plain numpy (or torch) values."""
    payload = json.loads(path.with_suffix(".json").read_text())
    with np.load(path.with_suffix(".npz"), allow_pickle=False) as npz:
        if len(npz.files) > MAX_ARRAYS:
            raise ValueError("too many arrays in message")
        arrays = {k: npz[k] for k in npz.files}
    for key, array in arrays.items():
        if array.dtype.kind not in "biufc":
            raise ValueError(f"array {key} has non-numeric dtype {array.dtype}")
    return decode(payload, arrays, as_tensor)
