"""Plain-data messages between the grader and the sandboxed student process.

Values cross the process boundary as JSON plus one ``.npz`` file of arrays, loaded with
``allow_pickle=False``: nothing the student's process writes can run code in the grader or
smuggle an object that "compares equal to anything". Supported values: None, bool, int,
float, str, lists/tuples, dicts with str keys, numpy arrays and torch tensors (sent as arrays).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

ARRAY_TAG = "__array__"
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


def encode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """Turn ``value`` into JSON-able data, moving arrays into ``arrays``."""
    array = _to_numpy(value)
    if array is not None:
        key = f"a{len(arrays)}"
        arrays[key] = np.require(array, requirements="C")  # keeps a 0-d array 0-d
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


def decode(data: Any, arrays: dict[str, np.ndarray], as_tensor: bool = False) -> Any:
    if isinstance(data, dict):
        if set(data) == {ARRAY_TAG}:
            array = arrays[data[ARRAY_TAG]]
            if as_tensor:
                import torch

                return torch.from_numpy(np.array(array, copy=True))
            return array
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
