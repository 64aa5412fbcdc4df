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
    ### BEGIN SOLUTION [Week 7 · Task 7.3]
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            parts = [model(images[i:i + batch_size]).argmax(dim=1) for i in range(0, len(images), batch_size)]
    finally:
        for module, mode in modes.items():
            module.train(mode)
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long, device=images.device)
    ### END SOLUTION


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
    ### BEGIN SOLUTION [Week 7 · Task 7.3]
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    if len(epsilons) == 0:
        raise ValueError("no epsilons: give at least one budget")
    accuracies = []
    for eps in tqdm(list(epsilons), desc="epsilons", disable=not progress):
        correct = 0
        for i in range(0, len(images), batch_size):
            x, y = images[i:i + batch_size], labels[i:i + batch_size]
            adversarial = attack(model, x, y, float(eps), **attack_kwargs)  # (b, C, H, W)
            correct += int((predict(model, adversarial, batch_size) == y).sum())
        accuracies.append(correct / max(len(images), 1))
    return torch.tensor(accuracies, dtype=torch.float32)
    ### END SOLUTION


def curve_area(epsilons: Sequence[float] | Tensor, accuracies: Sequence[float] | Tensor) -> float:
    """The area under an accuracy-epsilon curve divided by its epsilon range: the curve's mean accuracy.

    Trapezoids between consecutive points: ``sum_i (eps_{i+1} - eps_i) (acc_i + acc_{i+1}) / 2``, divided by
    ``eps_max - eps_min``, so it lies in [0, 1] and a model that keeps accuracy a at every epsilon scores a.

    Raises:
        ValueError: fewer than two points, lengths that differ, or epsilons not strictly increasing.
    """
    ### BEGIN SOLUTION [Week 7 · Task 7.3]
    eps = torch.as_tensor(epsilons, dtype=torch.float64).reshape(-1)
    acc = torch.as_tensor(accuracies, dtype=torch.float64).reshape(-1)
    if len(eps) != len(acc) or len(eps) < 2:
        raise ValueError(f"need the same number (>= 2) of epsilons and accuracies; got {len(eps)} and {len(acc)}")
    widths = eps[1:] - eps[:-1]  # (E-1,)
    if bool((widths <= 0).any()):
        raise ValueError(f"epsilons must increase strictly; got {eps.tolist()}")
    area = (widths * (acc[1:] + acc[:-1]) / 2).sum()
    return float(area / (eps[-1] - eps[0]))
    ### END SOLUTION


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
    ### BEGIN SOLUTION [Week 7 · Task 7.4]
    if len(models) == 0:
        raise ValueError("no models")
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    matrix = torch.zeros(len(models), len(models))
    for i, source in enumerate(tqdm(models, desc="sources", disable=not progress)):
        adversarial = torch.cat([attack(source, images[k:k + batch_size], labels[k:k + batch_size], float(eps),
                                        **attack_kwargs) for k in range(0, len(images), batch_size)])  # (N, C, H, W)
        for j, target in enumerate(models):
            matrix[i, j] = (predict(target, adversarial, batch_size) == labels).float().mean()
    return matrix
    ### END SOLUTION


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
    ### BEGIN SOLUTION [Week 7 · Task 7.5]
    if band not in ("low", "high"):
        raise ValueError(f"band={band!r}: expected 'low' or 'high'")
    if cutoff < 0 or height < 1 or width < 1:
        raise ValueError(f"cutoff={cutoff}, size {height} x {width}: the cutoff must be >= 0 and the sizes >= 1")
    u = torch.fft.fftfreq(height, dtype=torch.float64) * height  # (H,) cycles per image
    v = torch.fft.fftfreq(width, dtype=torch.float64) * width  # (W,)
    radius = (u[:, None] ** 2 + v[None, :] ** 2).sqrt()  # (H, W)
    return radius <= cutoff if band == "low" else radius > cutoff
    ### END SOLUTION


def band_limit(x: Tensor, mask: Tensor) -> Tensor:
    """``x`` (..., H, W) with only the frequencies ``mask`` (H, W) keeps: real(ifft2(fft2(x) * mask)) over
    the last two dimensions, in ``x``'s dtype. ``band_limit(x, low) + band_limit(x, high) == x``.

    Raises:
        ValueError: when the mask's shape is not x's last two dimensions.
    """
    ### BEGIN SOLUTION [Week 7 · Task 7.5]
    if tuple(mask.shape) != tuple(x.shape[-2:]):
        raise ValueError(f"a mask of shape {tuple(mask.shape)} for images of {tuple(x.shape[-2:])} pixels")
    spectrum = torch.fft.fft2(x) * mask.to(x.device)  # (..., H, W) complex, zero outside the band
    return torch.fft.ifft2(spectrum).real.to(x.dtype)
    ### END SOLUTION


def band_limited_perturbation(direction: Tensor, mask: Tensor, eps: float) -> Tensor:
    """A perturbation (B, C, H, W) of L-infinity norm ``eps`` per image, made only of the frequencies in
    ``mask``: ``band_limit(direction, mask)`` scaled so that each image's largest |value| is eps (an image
    whose band-limited direction is 0 everywhere stays 0).

    ``direction`` is where to push, e.g. the FGSM direction ``sign(grad)`` (:func:`frequency_attack`) or
    random signs (a control: as much change, no gradient).

    Raises:
        ValueError: a direction that is not 4-d, a negative eps, or the mask's errors (:func:`band_limit`).
    """
    ### BEGIN SOLUTION [Week 7 · Task 7.5]
    if direction.dim() != 4:
        raise ValueError(f"expected a direction (B, C, H, W), got shape {tuple(direction.shape)}")
    if eps < 0:
        raise ValueError(f"eps={eps} must be >= 0")
    limited = band_limit(direction, mask)  # (B, C, H, W)
    peak = limited.abs().amax(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    return torch.where(peak > 0, eps * limited / peak.clamp_min(1e-12), torch.zeros_like(limited))
    ### END SOLUTION


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
