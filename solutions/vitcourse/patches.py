"""Week 2 · From pixels to tokens: patch extraction and the patch embedding.

Shapes: B batch, C channels, H x W pixels, P the patch size (square patches),
h = H / P and w = W / P the patch grid, N = h * w patches, D the token width.

Patch order (the contract every later week relies on):

* **Between patches: raster order.** Patch ``n`` sits at grid row ``n // w`` and column
  ``n % w``: left to right along the top row of patches, then the next row down.
* **Inside a patch: (p1, p2, c).** Patch vector index ``(p1 * P + p2) * C + c`` holds the pixel
  at row ``p1``, column ``p2`` of the patch, channel ``c``: the channels of one pixel sit next
  to each other (einops: ``'b c (h p1) (w p2) -> b (h w) (p1 p2 c)'``).

The embedding stores its weight the way timm (and the paper's hybrid code) does: as a
``Conv2d`` kernel of shape (D, C, P, P). A convolution with kernel = stride = P visits the
patches in raster order and takes one dot product per patch and filter, which is exactly a
linear layer on the flattened patches once the kernel is re-ordered to (D, P*P*C).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def patchify(images: Tensor, patch_size: int) -> Tensor:
    """Cut images into non-overlapping square patches and flatten each one.

    Args:
        images: (B, C, H, W); H and W must be multiples of ``patch_size``.
        patch_size: P, the side of a patch in pixels.

    Returns:
        patches: (B, N, P*P*C) with N = (H/P) * (W/P), patches in raster order and each
        patch flattened in (p1, p2, c) order (see the module docstring).

    Raises:
        ValueError: when H or W is not divisible by P; the message names the sizes.
    """
    ### BEGIN SOLUTION [Week 2 · Task 2.1]
    batch, channels, height, width = images.shape
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"image size {height}x{width} (H x W) is not divisible by patch_size={patch_size}: "
            f"crop or resize the images to a multiple of {patch_size}, or pick another patch size")
    h, w = height // patch_size, width // patch_size
    x = images.reshape(batch, channels, h, patch_size, w, patch_size)  # (B, C, h, P, w, P)
    x = x.permute(0, 2, 4, 3, 5, 1)  # (B, h, w, P, P, C): grid first (raster), channels last
    return x.reshape(batch, h * w, patch_size * patch_size * channels)  # (B, N, P*P*C)
    ### END SOLUTION


def unpatchify(patches: Tensor, patch_size: int, image_size: tuple[int, int]) -> Tensor:
    """The inverse of :func:`patchify`: put the patches back into images.

    Args:
        patches: (B, N, P*P*C) in patchify's order.
        patch_size: P.
        image_size: (H, W) of the images the patches came from.

    Returns:
        images: (B, C, H, W) with ``unpatchify(patchify(x, P), P, x.shape[-2:]) == x``.

    Raises:
        ValueError: when the sizes do not fit together (N != (H/P)*(W/P), or the patch
        width is not a multiple of P*P).
    """
    ### BEGIN SOLUTION [Week 2 · Task 2.1]
    batch, n, dim = patches.shape
    height, width = image_size
    if height % patch_size or width % patch_size:
        raise ValueError(f"image size {height}x{width} is not divisible by patch_size={patch_size}")
    h, w = height // patch_size, width // patch_size
    if n != h * w or dim % (patch_size * patch_size):
        raise ValueError(f"patches of shape {tuple(patches.shape)} do not tile a {height}x{width} image "
                         f"with patch_size={patch_size}")
    channels = dim // (patch_size * patch_size)
    x = patches.reshape(batch, h, w, patch_size, patch_size, channels)  # (B, h, w, P, P, C)
    x = x.permute(0, 5, 1, 3, 2, 4)  # (B, C, h, P, w, P)
    return x.reshape(batch, channels, height, width)  # (B, C, H, W)
    ### END SOLUTION


def conv_weight_to_linear(weight: Tensor) -> Tensor:
    """Re-order a patch-embedding Conv2d kernel into the matrix of a linear layer on patches.

    Args:
        weight: (D, C, P, P), the kernel of ``nn.Conv2d(C, D, kernel_size=P, stride=P)``.

    Returns:
        (D, P*P*C): row d is filter d flattened in patchify's (p1, p2, c) order, so that
        ``F.linear(patchify(x, P), conv_weight_to_linear(W), b)`` equals
        ``F.conv2d(x, W, b, stride=P).flatten(2).transpose(1, 2)``.
    """
    ### BEGIN SOLUTION [Week 2 · Task 2.2]
    dim = weight.shape[0]
    return weight.permute(0, 2, 3, 1).reshape(dim, -1)  # (D, P, P, C) -> (D, P*P*C)
    ### END SOLUTION


class PatchEmbedding(nn.Module):
    """Patchify, then one shared linear map from a flattened patch to a D-dimensional token.

    Submodules (their names are the contract; timm's ``PatchEmbed`` uses the same):
        proj: ``nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)``.
              Its weight (D, C, P, P) and bias (D) are the parameters; ``forward`` uses them
              as a linear layer on :func:`patchify`'s output (Task 2.2), not as a convolution:
              it never calls ``self.proj(...)`` or ``conv2d`` (a graded rule, checked on the
              source, as Week 1's no-loop rule is).

    Args:
        patch_size: P.
        in_chans: C.
        embed_dim: D.
    """

    def __init__(self, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768) -> None:
        super().__init__()
        ### BEGIN SOLUTION [Week 2 · Task 2.2]
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        ### END SOLUTION

    def forward(self, images: Tensor) -> Tensor:
        """(B, C, H, W) -> tokens (B, N, D), one per patch, in raster order."""
        ### BEGIN SOLUTION [Week 2 · Task 2.2]
        patches = patchify(images, self.patch_size)  # (B, N, P*P*C)
        weight = conv_weight_to_linear(self.proj.weight)  # (D, P*P*C)
        return F.linear(patches, weight, self.proj.bias)  # (B, N, D)
        ### END SOLUTION


def patch_grid(image: Tensor, patch_size: int, gap: int = 1, fill: float = 1.0) -> Tensor:
    """For pictures: one image (C, H, W) with a ``gap``-pixel line between its patches.

    Not an exercise: the notebook uses it to show what the model's tokens look like.
    """
    channels, height, width = image.shape
    h, w = height // patch_size, width // patch_size
    step = patch_size + gap
    out = torch.full((channels, h * step - gap, w * step - gap), fill, dtype=image.dtype)
    for i in range(h):
        for j in range(w):
            out[:, i * step:i * step + patch_size, j * step:j * step + patch_size] = \
                image[:, i * patch_size:(i + 1) * patch_size, j * patch_size:(j + 1) * patch_size]
    return out
