"""Week 4 · Swin Transformer: attention in windows, shifted windows, and a hierarchy.

Liu et al., *Swin Transformer: Hierarchical Vision Transformer using Shifted Windows* (ICCV 2021).
A ViT attends from every token to every other: cost quadratic in the number of tokens. Swin cuts
the token grid into non-overlapping windows of ws x ws tokens and attends inside each window only
(W-MSA), which is linear in the number of tokens for a fixed window. Every second block moves the
window grid by half a window (SW-MSA), so information crosses window borders, and patch merging
halves the resolution between stages, giving a pyramid of feature maps like a CNN's.

Shapes. Swin works on feature maps with the channels last, (B, H, W, C): B batch, H x W tokens on
a grid, C the width. Window size ws = (wh, ww), N = wh * ww tokens per window,
nW = (H / wh) * (W / ww) windows per image, shift S = (sh, sw), nH heads of width Dh = C / nH,
K classes. Every ``window_size`` and ``shift_size`` argument is an int (square) or an (h, w) pair.

Orders (the contract the tests and timm's weights rely on):

* **Windows**: ``window_partition`` returns the windows of image 0 first, then image 1, ...; the
  windows of one image in raster order over the window grid (left to right, then down); the
  tokens inside a window in raster order too. Window ``w`` of image ``b`` is row ``b * nW + w``.
* **Relative positions**: token i of a window sits at (y_i, x_i) = (i // ww, i % ww). The pair
  (i, j) has the relative position (y_i - y_j, x_i - x_j), each in [-(wh - 1), wh - 1] x
  [-(ww - 1), ww - 1], stored at row (y_i - y_j + wh - 1) * (2 ww - 1) + (x_i - x_j + ww - 1) of a
  table of (2 wh - 1)(2 ww - 1) rows, one column per head.
* **Shift**: SW-MSA rolls the map by (-sh, -sw) (``torch.roll``: the content moves up and left,
  the first sh rows wrap around to the bottom), attends in the regular windows of the rolled map
  with a mask, and rolls the result back by (+sh, +sw).
* **Patch merging** concatenates the four tokens of each 2 x 2 neighbourhood in the order
  (0, 0), (1, 0), (0, 1), (1, 1) as (row offset, column offset), i.e.
  ``[x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]]``, as the original code does.

Module and parameter names are timm's (``timm.models.swin_transformer``), so a timm state dict
loads with ``strict=True``; the index tables and masks are buffers that are *not* saved
(``persistent=False``), as in timm. Every LayerNorm is ``nn.LayerNorm(dim)`` with PyTorch's
default eps = 1e-5 (Swin's; the ViT of Week 2 uses 1e-6).

The attention itself is Week 1's ``ScaledDotProductAttention``: the relative position bias and
the shift mask reach it through its additive ``bias`` argument. A Week 1 bug therefore shows up
here in your own clone; the grader runs this week with the reference Week 1 and 2 modules.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vitcourse.attention import ScaledDotProductAttention
from vitcourse.patches import PatchEmbedding
from vitcourse.vit import Mlp, init_vit_weights, to_2tuple

# Added to the scores of token pairs from different regions of a shifted window: the original
# code's value (Swin's masked_fill(attn_mask != 0, float(-100.0))). Any large negative number
# works: every row keeps at least one unmasked entry (each token shares a region with itself),
# so -inf would not give NaN here either. A masked pair's weight is at most exp(-100 + Δ) times an
# unmasked one's, Δ the difference of their scores (which the bias table, of order 1, barely
# moves): 3.8e-44 in float32 at Δ = 0, exactly 0 in float16 and bfloat16.
SHIFT_MASK_VALUE = -100.0

WindowSize = int | tuple[int, int]


# ---------------------------------------------------------------------------- Task 4.1: windows
def window_partition(x: Tensor, window_size: WindowSize) -> Tensor:
    """Cut feature maps into non-overlapping windows.

    Args:
        x: (B, H, W, C), channels last; H must be a multiple of wh and W of ww.
        window_size: ws, an int or (wh, ww).

    Returns:
        windows: (B * nW, wh, ww, C), nW = (H / wh) * (W / ww). Window w of image b is row
        b * nW + w; windows in raster order over the window grid, tokens in raster order inside.

    Raises:
        ValueError: when H or W is not a multiple of the window size (the message names both).
    """
    raise NotImplementedError('Week 4 · Task 4.1: implement window_partition in src/vitcourse/swin.py')


def window_reverse(windows: Tensor, window_size: WindowSize, height: int, width: int) -> Tensor:
    """The inverse of :func:`window_partition`: put the windows back together.

    Args:
        windows: (B * nW, wh, ww, C) in window_partition's order.
        window_size: ws, an int or (wh, ww).
        height, width: H and W of the feature maps the windows came from.

    Returns:
        (B, H, W, C), with ``window_reverse(window_partition(x, ws), ws, H, W) == x``.

    Raises:
        ValueError: when H or W is not a multiple of the window size, or the number of windows
        is not a multiple of nW.
    """
    raise NotImplementedError('Week 4 · Task 4.1: implement window_reverse in src/vitcourse/swin.py')


# ---------------------------------------------------------------------------- Task 4.2: relative positions
def relative_position_index(window_size: WindowSize) -> Tensor:
    """Which row of the bias table each (query, key) pair of a window reads.

    Args:
        window_size: ws, an int or (wh, ww).

    Returns:
        index: (N, N) int64, N = wh * ww. For tokens i, j at (y_i, x_i) = (i // ww, i % ww):
        ``index[i, j] = (y_i - y_j + wh - 1) * (2 * ww - 1) + (x_i - x_j + ww - 1)``,
        a number in [0, (2 wh - 1)(2 ww - 1)); pairs with the same offset share a row.
    """
    raise NotImplementedError('Week 4 · Task 4.2: implement relative_position_index in src/vitcourse/swin.py')


def relative_position_bias(table: Tensor, index: Tensor) -> Tensor:
    """Look the bias of every (query, key) pair up in the table, one map per head.

    Args:
        table: ((2 wh - 1)(2 ww - 1), nH), one learned bias per relative position and head.
        index: (N, N) from :func:`relative_position_index`.

    Returns:
        bias: (nH, N, N) with ``bias[h, i, j] = table[index[i, j], h]``.
    """
    raise NotImplementedError('Week 4 · Task 4.2: implement relative_position_bias in src/vitcourse/swin.py')


# ---------------------------------------------------------------------------- Task 4.3: window attention
class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window, with a learned relative position bias (W-MSA).

    softmax(Q K^T / sqrt(Dh) + bias_rel + mask) V per window and head, computed by Week 1's
    ``ScaledDotProductAttention`` with ``bias = bias_rel (+ mask)``.

    Parameters, buffers and submodules (timm's names):
        relative_position_bias_table: nn.Parameter ((2 wh - 1)(2 ww - 1), nH), initialised
            trunc-normal with std 0.02 (a convention, as timm; not graded).
        relative_position_index: buffer (N, N) int64 from :func:`relative_position_index`,
            registered with ``persistent=False`` (not in the state dict, as in timm).
        qkv:  nn.Linear(dim, 3 * dim, bias=qkv_bias); output features [q | k | v], each split into
              heads as in Week 2 (head h owns features h*Dh .. (h+1)*Dh - 1 of its third).
        core: Week 1's ``ScaledDotProductAttention(head_dim, dropout)``; the attention must go
              through it (a hidden test checks that it is called).
        proj: nn.Linear(dim, dim).

    Args:
        dim: C.
        num_heads: nH; must divide C (ValueError otherwise).
        window_size: ws, an int or (wh, ww).
        qkv_bias: whether qkv has a bias.
        dropout: dropout on the attention weights (training only).
    """

    def __init__(self, dim: int, num_heads: int, window_size: WindowSize = 7, qkv_bias: bool = True,
                 dropout: float = 0.0) -> None:
        super().__init__()
        raise NotImplementedError('Week 4 · Task 4.3: implement WindowAttention.__init__ in src/vitcourse/swin.py')

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Attend within each window.

        Args:
            x: (B * nW, N, C), the tokens of every window (window_partition's order, flattened).
            mask: optional (nW, N, N) additive mask (0 or -100) for the nW windows of one image;
                window w of image b (row b * nW + w of x) gets ``mask[w]``.

        Returns:
            (B * nW, N, C).
        """
        raise NotImplementedError('Week 4 · Task 4.3: implement WindowAttention.forward in src/vitcourse/swin.py')


# ---------------------------------------------------------------------------- Task 4.4: the shift mask
def shift_region_labels(input_resolution: tuple[int, int], window_size: WindowSize,
                        shift_size: WindowSize) -> Tensor:
    """Label the regions of the cyclically shifted map: tokens may attend to each other only
    when they carry the same label.

    After ``torch.roll(x, (-sh, -sw), dims=(1, 2))`` the last sh rows (and sw columns) hold
    content that came from the opposite side of the image. Along each axis with a non-zero
    shift the map has three bands, [0, H - wh), [H - wh, H - sh) and [H - sh, H) (likewise for
    the columns); an axis with no shift is one band. Each pair (row band, column band) is one
    region: up to 9.

    Args:
        input_resolution: (H, W).
        window_size: ws, an int or (wh, ww).
        shift_size: S, an int or (sh, sw), each 0 <= s < its window side.

    Returns:
        labels: (H, W) int64, equal exactly within a region. The numbering itself is free
        (graded is which tokens share a label).

    Raises:
        ValueError: when a shift is negative or not smaller than its window side, or H, W are not
        multiples of the window.
    """
    raise NotImplementedError('Week 4 · Task 4.4: implement shift_region_labels in src/vitcourse/swin.py')


def shifted_window_mask(input_resolution: tuple[int, int], window_size: WindowSize,
                        shift_size: WindowSize) -> Tensor:
    """The additive attention mask of SW-MSA, one (N, N) matrix per window of the shifted map.

    Args:
        input_resolution: (H, W) (the block only shifts along an axis larger than the window).
        window_size: ws, an int or (wh, ww).
        shift_size: S, an int or (sh, sw) (0 <= s < window side).

    Returns:
        mask: (nW, N, N) float32: ``mask[w, i, j] = 0`` when tokens i and j of window w (of the
        rolled map, window_partition's order) lie in the same region of
        :func:`shift_region_labels`, and ``-100.0`` (SHIFT_MASK_VALUE) when they do not.
        Equal to timm's ``SwinTransformerBlock(...).attn_mask``.

    Raises:
        ValueError: as :func:`shift_region_labels`.
    """
    raise NotImplementedError('Week 4 · Task 4.4: implement shifted_window_mask in src/vitcourse/swin.py')


# ---------------------------------------------------------------------------- Task 4.5: the Swin block
class SwinTransformerBlock(nn.Module):
    """One Swin block: x + (S)W-MSA(LN(x)), then x + MLP(LN(x)) (pre-norm, as in Week 2).

    With ``shift_size`` 0 the attention runs in the regular windows (W-MSA). Otherwise (SW-MSA)
    the normalised map is rolled by (-sh, -sw), attended in windows with
    :func:`shifted_window_mask`, and the result rolled back by (+sh, +sw) before the residual sum.

    Small maps (timm's rule, applied per axis at construction): where a side of
    ``input_resolution`` is not larger than the window, the window shrinks to that side and
    the shift along that axis becomes 0. A map no larger than the window is one window, and
    shifting it would only cut it into masked regions. The attributes ``window_size`` and
    ``shift_size`` hold the (h, w) pairs actually used.

    Submodules and buffers (timm's names):
        norm1, norm2: ``nn.LayerNorm(dim)`` (eps 1e-5, PyTorch's default, as Swin).
        attn: :class:`WindowAttention` (dim, num_heads, the window actually used, qkv_bias).
        mlp: Week 2's ``Mlp(dim, int(dim * mlp_ratio))`` (fc1, GELU, fc2).
        attn_mask: buffer (nW, N, N) from :func:`shifted_window_mask`, or None when no axis is
            shifted; ``persistent=False``.

    Args:
        dim: C.
        input_resolution: (H, W) of the maps this block sees.
        num_heads: nH.
        window_size: ws, an int or (wh, ww).
        shift_size: S, an int or (sh, sw); 0 for W-MSA, usually ws // 2 for SW-MSA.
        mlp_ratio: MLP width / C.
        qkv_bias: bias in the qkv projection.
        dropout: on the attention weights and the MLP (training only).

    Raises:
        ValueError: (at construction) when a side of ``input_resolution`` is larger than the
        window but not a multiple of it (timm pads; this course does not).
    """

    def __init__(self, dim: int, input_resolution: tuple[int, int], num_heads: int, window_size: WindowSize = 7,
                 shift_size: WindowSize = 0, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.input_resolution = (int(input_resolution[0]), int(input_resolution[1]))
        raise NotImplementedError('Week 4 · Task 4.5: implement SwinTransformerBlock.__init__ in src/vitcourse/swin.py')

    def forward(self, x: Tensor) -> Tensor:
        """(B, H, W, C) -> (B, H, W, C); (H, W) must be ``input_resolution`` (ValueError otherwise)."""
        raise NotImplementedError('Week 4 · Task 4.5: implement SwinTransformerBlock.forward in src/vitcourse/swin.py')


# ---------------------------------------------------------------------------- Task 4.6: patch merging
class PatchMerging(nn.Module):
    """Halve the resolution, double the width: concatenate each 2 x 2 neighbourhood, normalise, project.

    (B, H, W, C) -> concat of the 2 x 2 neighbours (B, H/2, W/2, 4C) in the order
    [x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]] -> norm -> reduction.

    Submodules (timm's names):
        norm: ``nn.LayerNorm(4 * dim)`` (eps 1e-5), applied *before* the projection (Swin v1).
        reduction: ``nn.Linear(4 * dim, out_dim, bias=False)``.

    Args:
        dim: C.
        out_dim: the output width; None means 2 * dim.
    """

    def __init__(self, dim: int, out_dim: int | None = None) -> None:
        super().__init__()
        raise NotImplementedError('Week 4 · Task 4.6: implement PatchMerging.__init__ in src/vitcourse/swin.py')

    def forward(self, x: Tensor) -> Tensor:
        """(B, H, W, C) -> (B, H/2, W/2, out_dim); H and W must be even (ValueError naming them)."""
        raise NotImplementedError('Week 4 · Task 4.6: implement PatchMerging.forward in src/vitcourse/swin.py')


# ---------------------------------------------------------------------------- given: embedding and head
class SwinPatchEmbedding(PatchEmbedding):
    """Week 2's patch embedding, laid out as a map and normalised: (B, C, H, W) -> (B, h, w, D).

    Not an exercise. Parameters ``proj`` (the (D, C, P, P) kernel, Week 2) and ``norm``
    (``nn.LayerNorm(D)``), timm's ``PatchEmbed(norm_layer=nn.LayerNorm, output_fmt='NHWC')``.
    """

    def __init__(self, patch_size: int = 4, in_chans: int = 3, embed_dim: int = 96) -> None:
        super().__init__(patch_size, in_chans, embed_dim)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, images: Tensor) -> Tensor:
        batch, _, height, width = images.shape
        tokens = super().forward(images)  # (B, h*w, D), raster order
        grid = tokens.reshape(batch, height // self.patch_size, width // self.patch_size, -1)  # (B, h, w, D)
        return self.norm(grid)


class ClassifierHead(nn.Module):
    """Global average pooling over the map, then a linear classifier: (B, H, W, C) -> (B, K).

    Not an exercise; timm's name for the linear layer is ``fc`` (``head.fc`` in the model).
    """

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x.mean(dim=(1, 2)))  # (B, K)


# ---------------------------------------------------------------------------- Task 4.7: the hierarchy
class SwinTransformerStage(nn.Module):
    """One stage: optional patch merging, then ``depth`` blocks alternating W-MSA and SW-MSA.

    Submodules (timm's names): ``downsample`` (:class:`PatchMerging` (dim -> out_dim) when
    ``downsample``, else ``nn.Identity()``; it runs *first*, as in timm), ``blocks`` (an
    ``nn.Sequential`` of :class:`SwinTransformerBlock` of width out_dim; block i has shift 0 when i
    is even and ws // 2 (per axis) when i is odd).

    Args:
        dim: width of the input map.
        out_dim: width of the blocks (and the output); must equal dim without downsampling.
        input_resolution: (H, W) of the input map; the blocks see (H/2, W/2) after downsampling.
        depth: number of blocks.
        downsample: whether the stage starts with patch merging.
        num_heads, window_size, mlp_ratio, qkv_bias, dropout: for every block.

    Raises:
        ValueError: without downsampling, when out_dim differs from dim.
    """

    def __init__(self, dim: int, out_dim: int, input_resolution: tuple[int, int], depth: int,
                 downsample: bool, num_heads: int, window_size: WindowSize = 7, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        raise NotImplementedError('Week 4 · Task 4.7: implement SwinTransformerStage.__init__ in src/vitcourse/swin.py')

    def forward(self, x: Tensor) -> Tensor:
        """(B, H, W, dim) -> (B, H', W', out_dim), (H', W') = output_resolution."""
        raise NotImplementedError('Week 4 · Task 4.7: implement SwinTransformerStage.forward in src/vitcourse/swin.py')


class SwinTransformer(nn.Module):
    """A hierarchical Swin Transformer for classification (timm's layout and names).

    patch_embed (B, C, H, W) -> (B, h, w, D) with h, w = H/P, W/P; stage i (``layers.i``) has width
    D * 2^i and works at (h / 2^i, w / 2^i) (stage 0 without patch merging, every later stage
    starting with one); then ``norm`` (LayerNorm over the last width, eps 1e-5) on every token,
    the average over the final map, and ``head.fc``: logits (B, K).

    Submodules: ``patch_embed`` (:class:`SwinPatchEmbedding`), ``layers`` (an ``nn.Sequential`` of
    :class:`SwinTransformerStage`), ``norm``, ``head`` (:class:`ClassifierHead`). Linear weights are
    initialised trunc-normal std 0.02 with zero biases (a convention, as timm; not graded).

    Args:
        img_size: int or (H, W); h and w must be divisible by 2^(stages - 1).
        patch_size: P.
        in_chans: C.
        num_classes: K.
        embed_dim: D, the width of stage 0.
        depths: blocks per stage.
        num_heads: heads per stage (same length as depths).
        window_size: ws for every stage (clamped per block on small maps, see the block).
        mlp_ratio, qkv_bias, dropout: for every block.

    Attribute ``num_features``: D * 2^(stages - 1), the width the head sees.
    """

    def __init__(self, img_size: int | tuple[int, int] = 32, patch_size: int = 2, in_chans: int = 3,
                 num_classes: int = 10, embed_dim: int = 48, depths: tuple[int, ...] = (2, 2, 2),
                 num_heads: tuple[int, ...] = (3, 6, 12), window_size: WindowSize = 4, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        height, width = to_2tuple(img_size)
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {depths} and num_heads {num_heads} need one entry per stage")
        grid = (height // patch_size, width // patch_size)
        scale = 2 ** (len(depths) - 1)
        if height % patch_size or width % patch_size or grid[0] % scale or grid[1] % scale:
            raise ValueError(f"img_size {height}x{width} with patch_size={patch_size} gives a "
                             f"{grid[0]}x{grid[1]} grid; {len(depths)} stages need it divisible by {scale}")
        self.grid_size = grid
        self.num_features = embed_dim * scale
        raise NotImplementedError('Week 4 · Task 4.7: implement SwinTransformer.__init__ in src/vitcourse/swin.py')

    def forward_features(self, images: Tensor) -> Tensor:
        """(B, C, H, W) -> the normalised last map (B, h / 2^(S-1), w / 2^(S-1), num_features)."""
        raise NotImplementedError('Week 4 · Task 4.7: implement SwinTransformer.forward_features in src/vitcourse/swin.py')

    def forward(self, images: Tensor) -> Tensor:
        """(B, C, H, W) -> logits (B, K)."""
        raise NotImplementedError('Week 4 · Task 4.7: implement SwinTransformer.forward in src/vitcourse/swin.py')
