"""Week 7 · Task 7.1: Grad-CAM for a CNN layer and for a ViT block.

Grad-CAM (Selvaraju et al., ICCV 2017) explains one class score with one layer's activations A
(B, C, h, w): each channel k gets a weight, the gradient of the score with respect to A_k averaged
over the positions, and the map is the ReLU of the weighted sum of the channels,

    alpha_k = mean_{i,j} d y_c / d A_k[i, j]          cam = ReLU(sum_k alpha_k A_k)   (B, h, w),

upsampled to the image (bilinear) and scaled to [0, 1] per image. A ViT block outputs tokens
(B, T, D), not a feature map: :func:`vit_reshape_transform` drops the CLS (and distillation) tokens
and lays the N = h * w patch tokens out on their grid, so the D features play the channels.

The numbers match ``pytorch_grad_cam.GradCAM`` (grad-cam 1.5.7) with the same target layer and
reshape transform; unlike it, this one leaves the model as it found it: its train/eval mode, no
hooks, no ``.grad`` on its parameters.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NORM_EPS = 1e-7  # added to each map's maximum before dividing, as pytorch_grad_cam does


def vit_reshape_transform(tokens: Tensor, num_prefix_tokens: int = 1,
                          grid_size: tuple[int, int] | None = None) -> Tensor:
    """ViT tokens (B, T, D) -> a feature map (B, D, h, w) for Grad-CAM.

    Args:
        tokens: a block's output (or a block's norm1 output) (B, T, D) with T = num_prefix_tokens + h * w,
            the prefix tokens first (timm's and the course's layout: [CLS, (dist,) patch_1 .. patch_N]).
        num_prefix_tokens: how many tokens precede the patches: 1 (CLS), 2 (CLS and DeiT's distillation
            token), 0 (none).
        grid_size: (h, w) of the patch grid; None: square, h = w = sqrt(N).

    Raises:
        ValueError: when ``tokens`` is not 3-d, or the N patch tokens do not fill the grid (a square one
            when ``grid_size`` is None).
    """
    ### BEGIN SOLUTION [Week 7 · Task 7.1]
    if tokens.dim() != 3:
        raise ValueError(f"expected tokens (B, T, D), got shape {tuple(tokens.shape)}")
    batch, count, dim = tokens.shape
    patches = tokens[:, num_prefix_tokens:]  # (B, N, D): CLS / distillation tokens dropped
    n = count - num_prefix_tokens
    if grid_size is None:
        side = round(n ** 0.5)
        grid_size = (side, side)
    h, w = grid_size
    if h * w != n or n <= 0:
        raise ValueError(f"{count} tokens minus {num_prefix_tokens} prefix tokens = {n} patches do not fill a "
                         f"{h} x {w} grid")
    return patches.reshape(batch, h, w, dim).permute(0, 3, 1, 2)  # (B, D, h, w)
    ### END SOLUTION


class GradCAM:
    """Grad-CAM maps of ``model`` at ``target_layer``: ``GradCAM(model, layer)(images, targets)``.

    Args:
        model: any classifier, images (B, C, H, W) -> logits (B, K).
        target_layer: a submodule of ``model`` whose output is a feature map (B, C', h, w), or, with
            ``reshape_transform``, anything that transform turns into one (e.g. a ViT block's tokens). It
            must run once per forward pass.
        reshape_transform: applied to the layer's output and to its gradient alike, e.g.
            :func:`vit_reshape_transform` (``functools.partial(vit_reshape_transform, num_prefix_tokens=2)``
            for DeiT).

    Calling it returns (B, H, W) float maps, detached, each scaled to [0, 1] (its minimum 0; its maximum
    1 unless the whole map is 0): the ReLU of the weighted channels (B, h, w), min-max scaled per image
    (shifted to minimum 0, divided by its maximum + 1e-7), bilinearly upsampled to the images' H x W
    (``align_corners=False``) and min-max scaled again, as pytorch_grad_cam does.
    """

    def __init__(self, model: nn.Module, target_layer: nn.Module,
                 reshape_transform: Callable[[Tensor], Tensor] | None = None) -> None:
        self.model = model
        self.target_layer = target_layer
        self.reshape_transform = reshape_transform

    def __call__(self, images: Tensor, targets: Tensor | None = None) -> Tensor:
        """images (B, C, H, W) (as the model takes them), targets (B,) class indices (None: the predicted
        class of each image) -> maps (B, H, W) in [0, 1].

        The model runs in eval mode (dropout off, batch-norm statistics frozen); its mode, its hooks and its
        parameters' gradients are as before when this returns. Gradients are taken with respect to the
        layer's output only (``torch.autograd.grad``), so the model needs no ``requires_grad`` parameters.
        """
        ### BEGIN SOLUTION [Week 7 · Task 7.1]
        modes = {module: module.training for module in self.model.modules()}
        captured: list[Tensor] = []
        handle = self.target_layer.register_forward_hook(lambda module, args, output: captured.append(output))
        self.model.eval()
        try:
            with torch.enable_grad():
                inputs = images.detach().requires_grad_(True)  # a graph even when every parameter is frozen
                logits = self.model(inputs)  # (B, K)
                if targets is None:
                    targets = logits.argmax(dim=1)
                targets = torch.as_tensor(targets, device=logits.device).long().reshape(-1)
                if len(targets) != len(logits):
                    raise ValueError(f"{len(targets)} targets for {len(logits)} images: give one class per image")
                score = logits.gather(1, targets[:, None]).sum()  # each image's own class score
                activations = captured[-1]
                (gradients,) = torch.autograd.grad(score, activations)
        finally:
            handle.remove()
            for module, mode in modes.items():
                module.train(mode)
        activations = activations.detach()
        if self.reshape_transform is not None:
            activations = self.reshape_transform(activations)
            gradients = self.reshape_transform(gradients)
        weights = gradients.mean(dim=(2, 3))  # (B, C'): one weight per channel, gradients averaged over h, w
        cam = F.relu((weights[:, :, None, None] * activations).sum(dim=1))  # (B, h, w)
        cam = _min_max(cam)  # first to [0, 1]: a map of tiny values would otherwise drown in NORM_EPS
        cam = F.interpolate(cam[:, None], size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        return _min_max(cam).detach()  # (B, H, W)
        ### END SOLUTION


def _min_max(maps: Tensor) -> Tensor:
    """(B, h, w) -> each map shifted to minimum 0 and divided by its maximum + NORM_EPS."""
    maps = maps - maps.amin(dim=(1, 2), keepdim=True)
    return maps / (maps.amax(dim=(1, 2), keepdim=True) + NORM_EPS)
