"""Notebook checks: compare what you computed with a reference, right after you compute it.

``compare("context", mine, reference)`` prints one line with the largest absolute difference
and the relative error, and says plainly whether that is a match. It never raises: the
notebook keeps going, and the hidden tests decide the grade.
"""

from __future__ import annotations

import torch
from torch import Tensor


def rel_error(actual: Tensor, expected: Tensor) -> float:
    """max |a - e| / max(|a| + |e|) over all entries (0 for identical tensors)."""
    actual, expected = actual.detach().double(), expected.detach().double()
    denom = (actual.abs() + expected.abs()).max().clamp_min(1e-12)
    return float((actual - expected).abs().max() / denom)


def compare(name: str, actual: Tensor, expected: Tensor, tol: float = 1e-6) -> bool:
    """Print a one-line verdict for ``actual`` against ``expected``; return whether they match."""
    if tuple(actual.shape) != tuple(expected.shape):
        print(f"[shape] {name}: got {tuple(actual.shape)}, expected {tuple(expected.shape)}")
        return False
    if not torch.isfinite(actual).all():
        print(f"[NaN ] {name}: contains NaN or inf")
        return False
    err = rel_error(actual, expected)
    diff = float((actual.detach().double() - expected.detach().double()).abs().max())
    ok = err < tol
    verdict = "match" if ok else "MISMATCH"
    print(f"[{'ok' if ok else 'XX'}  ] {name}: max abs diff {diff:.2e}, relative error {err:.2e} "
          f"(expect < {tol:.0e}) -> {verdict}")
    return ok
