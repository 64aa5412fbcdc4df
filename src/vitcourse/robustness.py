"""Week 7 · Tasks 7.3-7.5: robustness curves, transfer between models, perturbations by frequency.

Every model here takes images in pixel space, (B, C, H, W) in [0, 1], and normalises them itself: wrap
one that expects normalised input in :class:`Normalized` first (``Normalized(model, mean, std)``). Then
one adversarial image is one tensor that every model can be asked about, which is what a transfer
matrix needs.

An ``attack`` is any function ``attack(model, images, labels, eps, **kwargs) -> adversarial images``, such
as :func:`vitcourse.attacks.fgsm` and :func:`vitcourse.attacks.pgd`.

* Task 7.3, :func:`robustness_curve` and :func:`curve_area`: accuracy against epsilon, and the area under
  that curve (the mean accuracy over the epsilon range).
* Task 7.4, :func:`transfer_matrix`: adversarial examples made on one model (white box), evaluated on
  another (black box). Mahmood et al. (ICCV 2021, arXiv 2104.02610) found that they transfer poorly
  between ViTs and CNNs.
* Task 7.5, :func:`fourier_mask`, :func:`band_limit`, :func:`band_limited_perturbation`: a perturbation
  kept to the low or the high spatial frequencies by a mask on its 2D Fourier transform.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

Attack = Callable[..., Tensor]  # attack(model, images, labels, eps, **kwargs) -> (B, C, H, W)


class Normalized(nn.Module):
    """``model((x - mean) / std)``: a model that expects normalised input, made to take pixels in [0, 1].

    ``mean`` and ``std`` (C,) are buffers (they move with ``.to(device)``); the wrapped model is ``.model``.
    """

    def __init__(self, model: nn.Module, mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1))

    def forward(self, images: Tensor) -> Tensor:
        """(B, C, H, W) in [0, 1] -> the model's output."""
        return self.model((images - self.mean) / self.std)


# ---------------------------------------------------------------------------- Task 7.3
def predict(model: nn.Module, images: Tensor, batch_size: int = 256) -> Tensor:
    """The predicted class of each image, (N,) int64: ``model`` in eval mode (its mode restored after),
    without autograd, ``batch_size`` images at a time."""
    raise NotImplementedError('Week 7 · Task 7.3: implement predict in src/vitcourse/robustness.py')


def robustness_curve(model: nn.Module, images: Tensor, labels: Tensor, epsilons: Sequence[float], attack: Attack,
                     *, batch_size: int = 256, progress: bool = False, **attack_kwargs) -> Tensor:
    """Accuracy of ``model`` on ``attack``'s adversarial images at each epsilon: (E,) float32.

    For each ``eps`` in ``epsilons`` (in that order) and each batch of ``batch_size`` images, the attack
    makes ``attack(model, images_b, labels_b, eps, **attack_kwargs)``; the accuracy is the share of all N
    images whose adversarial version ``model`` still classifies as ``labels`` (:func:`predict`). At eps 0
    an attack that leaves the images alone gives the clean accuracy. ``progress``: a tqdm bar over the
    epsilons.

    Args:
        model: images (B, C, H, W) in [0, 1] -> logits (B, K) (see :class:`Normalized`).
        images: (N, C, H, W) in [0, 1]; labels: (N,) int64.
        epsilons: E budgets (any order; the result follows it).
        attack: e.g. ``vitcourse.attacks.fgsm``, or ``functools.partial(pgd, steps=10)``.

    Raises:
        ValueError: when images and labels differ in length, or epsilons is empty.
    """
    raise NotImplementedError('Week 7 · Task 7.3: implement robustness_curve in src/vitcourse/robustness.py')


def curve_area(epsilons: Sequence[float] | Tensor, accuracies: Sequence[float] | Tensor) -> float:
    """The area under an accuracy-epsilon curve divided by its epsilon range: the curve's mean accuracy.

    Trapezoids between consecutive points: ``sum_i (eps_{i+1} - eps_i) (acc_i + acc_{i+1}) / 2``, divided by
    ``eps_max - eps_min``, so it lies in [0, 1] and a model that keeps accuracy a at every epsilon scores a.

    Raises:
        ValueError: fewer than two points, lengths that differ, or epsilons not strictly increasing.
    """
    raise NotImplementedError('Week 7 · Task 7.3: implement curve_area in src/vitcourse/robustness.py')


# ---------------------------------------------------------------------------- Task 7.4
def transfer_matrix(models: Sequence[nn.Module], images: Tensor, labels: Tensor, eps: float, attack: Attack, *,
                    batch_size: int = 256, progress: bool = False, **attack_kwargs) -> Tensor:
    """Accuracy of every model on every model's adversarial examples: (S, S) float32.

    Entry [i, j] is the accuracy of ``models[j]`` on the adversarial images made by
    ``attack(models[i], images_b, labels_b, eps, **attack_kwargs)`` (batches of ``batch_size``): row i is
    the source, column j the target. The diagonal is each model attacked with its own gradients (white
    box); off the diagonal, an attack transferred from another model (black box). ``progress``: a tqdm bar
    over the sources.

    Raises:
        ValueError: no models, or images and labels that differ in length.
    """
    raise NotImplementedError('Week 7 · Task 7.4: implement transfer_matrix in src/vitcourse/robustness.py')


# ---------------------------------------------------------------------------- Task 7.5
def fourier_mask(height: int, width: int, cutoff: float, band: str = "low") -> Tensor:
    """Which 2D frequencies to keep: (H, W) bool, in the layout of ``torch.fft.fft2`` (not shifted).

    Frequency (u, v) of entry [i, j] is counted in cycles per image: u = ``torch.fft.fftfreq(H)[i] * H``,
    v = ``torch.fft.fftfreq(W)[j] * W`` (0, 1, ..., then the negative ones); its radius is
    sqrt(u^2 + v^2). ``band="low"`` keeps the radii <= ``cutoff`` (the constant term included), ``"high"``
    the radii > ``cutoff``: the two masks are complements. The mask is symmetric under (u, v) -> (-u, -v),
    so filtering a real image gives a real image.

    Raises:
        ValueError: a band other than "low" or "high", a negative cutoff, or a size < 1.
    """
    raise NotImplementedError('Week 7 · Task 7.5: implement fourier_mask in src/vitcourse/robustness.py')


def band_limit(x: Tensor, mask: Tensor) -> Tensor:
    """``x`` (..., H, W) with only the frequencies ``mask`` (H, W) keeps: real(ifft2(fft2(x) * mask)) over
    the last two dimensions, in ``x``'s dtype. ``band_limit(x, low) + band_limit(x, high) == x``.

    Raises:
        ValueError: when the mask's shape is not x's last two dimensions.
    """
    raise NotImplementedError('Week 7 · Task 7.5: implement band_limit in src/vitcourse/robustness.py')


def band_limited_perturbation(direction: Tensor, mask: Tensor, eps: float) -> Tensor:
    """A perturbation (B, C, H, W) of L-infinity norm ``eps`` per image, made only of the frequencies in
    ``mask``: ``band_limit(direction, mask)`` scaled so that each image's largest |value| is eps (an image
    whose band-limited direction is 0 everywhere stays 0).

    ``direction`` is where to push, e.g. the FGSM direction ``sign(grad)`` (:func:`frequency_attack`) or
    random signs (a control: as much change, no gradient).

    Raises:
        ValueError: a direction that is not 4-d, a negative eps, or the mask's errors (:func:`band_limit`).
    """
    raise NotImplementedError('Week 7 · Task 7.5: implement band_limited_perturbation in src/vitcourse/robustness.py')


def frequency_attack(model: nn.Module, images: Tensor, labels: Tensor, eps: float, mask: Tensor,
                     random: bool = False, generator: torch.Generator | None = None) -> Tensor:
    """One FGSM-like step kept to the frequencies of ``mask``: ``clip(x + band_limited_perturbation(sign(grad),
    mask, eps), 0, 1)`` for a model that takes pixels in [0, 1]; with ``random`` the direction is random
    signs instead of the gradient's (from ``generator``), the control for "is it the gradient or just the
    amount of change?". The clamp to [0, 1] can clip a little of the perturbation at saturated pixels.
    (A course utility built from Tasks 7.2 and 7.5, not graded itself.)"""
    from vitcourse.attacks import eval_mode, input_gradient

    if random:
        direction = torch.randint(0, 2, images.shape, generator=generator).to(images) * 2 - 1
    else:
        with eval_mode(model):
            direction = input_gradient(model, images, labels).sign()
    return (images + band_limited_perturbation(direction, mask, eps)).clamp(0, 1).detach()
