"""Notebook checks: compare what you computed with a reference, right after you compute it.

``compare("context", mine, reference)`` prints one line with the largest absolute difference
and the relative error, and says plainly whether that is a match. It never raises: the
notebook keeps going, and the hidden tests decide the grade. ``randomise(reference)`` gives a
library's module weights far from its initialisation before such a comparison.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


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


def randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """``model`` in eval mode with weights and biases N(0, 0.2) and LayerNorm scales N(1, 0.1).

    A LayerNorm scale is recognised by its name, as timm and the course name them: a parameter
    whose name contains ``norm`` and ends in ``weight``.

    A library's own initialisation (small weights, zero biases, unit scales) would let small bugs,
    a tanh GELU or a missing bias, hide under the tolerance of a comparison.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            mean, spread = (1.0, 0.1) if "norm" in name and name.endswith("weight") else (0.0, 0.2)
            param.copy_(mean + spread * torch.randn(param.shape, generator=gen))
    return model.eval()
