"""Week 7 · Task 7.2: FGSM and PGD under an L-infinity budget.

Both attacks work in pixel space: ``images`` (B, C, H, W) lie in the valid range ``clamp`` (default
[0, 1]) and ``eps`` is measured in the same units (8/255 is "8 grey levels"). A model either takes such
images and normalises them itself (``mean=None, std=None``), or expects normalised input: then pass its
``mean`` and ``std`` (C,) and the attack feeds it ``(x - mean) / std`` while the budget, the steps and
the clamping stay in pixel space (torchattacks' ``set_normalization_used``).

* FGSM (Goodfellow et al., 2015): one step of size eps along the sign of the loss gradient,
  ``x' = clip(x + eps * sign(grad_x L(f(x), y)))``.
* PGD (Madry et al., 2018): a random start in the eps-ball (uniform per coordinate), then ``steps``
  steps of size ``alpha`` along the gradient's sign, each followed by the projection back onto the ball
  around the clean image and the clamp to the valid range.

Untargeted attacks raise the loss of the true ``labels``; with ``targeted=True`` the ``labels`` are the
targets and the attacks lower their loss instead (step against the gradient).

The loss is the mean cross-entropy over the batch; the results equal torchattacks 3.5.1's ``FGSM`` and
``PGD`` (without random start; with it, the start is random). The model runs in eval mode, and its
mode (every submodule's) is restored afterwards; gradients are taken with respect to the images only
(``torch.autograd.grad``), so no ``.grad`` is left on its parameters.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Stats = Sequence[float] | Tensor | None


def _check(images: Tensor, eps: float, clamp: tuple[float, float]) -> None:
    """Clear messages for inputs an attack cannot use."""
    if images.dim() != 4:
        raise ValueError(f"expected images (B, C, H, W), got shape {tuple(images.shape)}")
    if eps < 0:
        raise ValueError(f"eps={eps}: an L-infinity budget cannot be negative")
    low, high = clamp
    if images.numel() and (float(images.min()) < low - 1e-6 or float(images.max()) > high + 1e-6):
        raise ValueError(f"images must lie in the valid range [{low}, {high}] (pixel space, before any "
                         f"normalisation; give the model's mean and std instead); got values in "
                         f"[{float(images.min()):.3g}, {float(images.max()):.3g}]")


def _normalizer(images: Tensor, mean: Stats, std: Stats):
    """x -> (x - mean) / std per channel, or x itself when the model normalises inside."""
    if mean is None and std is None:
        return lambda x: x
    if mean is None or std is None:
        raise ValueError("give both mean and std (the model expects normalised input) or neither")
    shape = (1, -1, 1, 1)
    mean_t = torch.as_tensor(mean, dtype=images.dtype, device=images.device).reshape(shape)
    std_t = torch.as_tensor(std, dtype=images.dtype, device=images.device).reshape(shape)
    return lambda x: (x - mean_t) / std_t


def input_gradient(model: nn.Module, images: Tensor, labels: Tensor, *, targeted: bool = False,
                   mean: Stats = None, std: Stats = None) -> Tensor:
    """The gradient (B, C, H, W) of the mean cross-entropy with respect to the pixels ``images``, of the
    loss the attack ascends: L(f(x), labels), or -L(f(x), labels) when ``targeted``.

    The model runs in whatever mode it is in (the attacks put it in eval mode around their calls); no
    ``.grad`` reaches its parameters.
    """
    ### BEGIN SOLUTION [Week 7 · Task 7.2]
    normalize = _normalizer(images, mean, std)
    with torch.enable_grad():
        x = images.detach().clone().requires_grad_(True)
        loss = F.cross_entropy(model(normalize(x)), labels)
        if targeted:
            loss = -loss  # towards the target: descend its loss
        (grad,) = torch.autograd.grad(loss, x)  # the pixels only: nothing accumulates on the parameters
    return grad
    ### END SOLUTION


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``with eval_mode(model):`` the model in eval mode (dropout off, batch-norm statistics frozen); on exit,
    even by an exception, every submodule back in the mode it was in (a model in training mode stays in
    training mode for the caller's next step)."""
    ### BEGIN SOLUTION [Week 7 · Task 7.2]
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        yield model
    finally:
        for module, mode in modes.items():
            module.train(mode)
    ### END SOLUTION


def fgsm(model: nn.Module, images: Tensor, labels: Tensor, eps: float, *, targeted: bool = False,
         mean: Stats = None, std: Stats = None, clamp: tuple[float, float] = (0.0, 1.0)) -> Tensor:
    """The fast gradient sign method: ``clip(x + eps * sign(grad))`` (``x - ...`` towards a target).

    Args:
        model: images -> logits (B, K); normalised inside unless ``mean``/``std`` are given.
        images: (B, C, H, W) in the valid range ``clamp``, pixel space.
        labels: (B,) int64: the true classes, or the targets when ``targeted``.
        eps: the L-infinity budget, in pixel units (>= 0; 0 returns the images unchanged).
        targeted: lower the targets' loss instead of raising the true classes'.
        mean, std: (C,) the normalisation the model expects (None, None: the model normalises itself).
        clamp: the valid pixel range (low, high).

    Returns:
        (B, C, H, W) adversarial images, detached, with ``|x' - x| <= eps`` and values in ``clamp``.

    Raises:
        ValueError: for images that are not 4-d or lie outside ``clamp``, a negative eps, or only one of
            mean and std.
    """
    ### BEGIN SOLUTION [Week 7 · Task 7.2]
    _check(images, eps, clamp)
    with eval_mode(model):
        grad = input_gradient(model, images, labels, targeted=targeted, mean=mean, std=std)
    adversarial = images.detach() + eps * grad.sign()  # targeted: the gradient of -L already points at the target
    return adversarial.clamp(*clamp).detach()
    ### END SOLUTION


def pgd(model: nn.Module, images: Tensor, labels: Tensor, eps: float, alpha: float | None = None, steps: int = 10,
        random_start: bool = True, *, targeted: bool = False, mean: Stats = None, std: Stats = None,
        clamp: tuple[float, float] = (0.0, 1.0), generator: torch.Generator | None = None) -> Tensor:
    """Projected gradient descent (Madry et al., 2018) under an L-infinity budget.

    Starting point: ``images`` or, with ``random_start``, ``clip(images + U(-eps, eps))`` (independent per
    coordinate, drawn from ``generator`` or torch's global one). Then ``steps`` times:

        x <- x + alpha * sign(grad)                       (the step; targeted: against the target's loss)
        x <- images + clip(x - images, -eps, eps)         (projection onto the eps-ball around the clean image)
        x <- clip(x, *clamp)                              (back into the valid pixel range)

    Args:
        alpha: the step size (None: eps / 4, torchattacks' 2/255 for 8/255).
        steps: the number of gradient steps (>= 0).
        random_start: start at a uniformly random point of the ball (True), or at the images (False).
        generator: the random start's generator (None: torch's global one).
        The others as in :func:`fgsm`.

    Returns:
        (B, C, H, W) adversarial images, detached, within ``eps`` of ``images`` and in ``clamp``.

    Raises:
        ValueError: as :func:`fgsm`, and for a negative ``steps`` or ``alpha``.
    """
    ### BEGIN SOLUTION [Week 7 · Task 7.2]
    _check(images, eps, clamp)
    alpha = eps / 4 if alpha is None else alpha
    if steps < 0 or alpha < 0:
        raise ValueError(f"steps={steps}, alpha={alpha}: both must be >= 0")
    clean = images.detach()
    x = clean.clone()
    if random_start:
        noise = torch.rand(clean.shape, generator=generator, dtype=clean.dtype, device=clean.device)
        x = (x + (2 * noise - 1) * eps).clamp(*clamp)  # uniform in the ball, then valid
    with eval_mode(model):
        for _ in range(steps):
            grad = input_gradient(model, x, labels, targeted=targeted, mean=mean, std=std)
            x = x + alpha * grad.sign()  # the step first ...
            x = clean + (x - clean).clamp(-eps, eps)  # ... then the projection onto the ball ...
            x = x.clamp(*clamp)  # ... and the valid range
    return x.detach()
    ### END SOLUTION
