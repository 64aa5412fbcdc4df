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
    raise NotImplementedError('Week 7 · Task 7.1: implement vit_reshape_transform in src/vitcourse/gradcam.py')


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
        raise NotImplementedError('Week 7 · Task 7.1: implement GradCAM.__call__ in src/vitcourse/gradcam.py')


def _min_max(maps: Tensor) -> Tensor:
    """(B, h, w) -> each map shifted to minimum 0 and divided by its maximum + NORM_EPS."""
    maps = maps - maps.amin(dim=(1, 2), keepdim=True)
    return maps / (maps.amax(dim=(1, 2), keepdim=True) + NORM_EPS)
