"""Week 2 · A complete Vision Transformer, and what it costs.

Shapes: B batch, C x H x W images, P patch size, h x w = (H/P) x (W/P) patch grid,
N = h * w patches, T = N + 1 tokens (the CLS token first), D width, K classes,
nH heads of width Dh = D / nH, M = int(D * mlp_ratio) the MLP's hidden width.

The forward pass (Dosovitskiy et al. 2021, eq. 1-4):

    z_0 = [x_cls; E x_1; ...; E x_N] + E_pos              (B, T, D)
    z'_l = z_{l-1} + MSA(LN(z_{l-1}))                      pre-norm: LN *inside* the branch
    z_l  = z'_l + MLP(LN(z'_l))                            MLP = fc2(GELU(fc1(.))), exact GELU
    y    = head(LN(z_L)[:, 0])                             (B, K): the CLS token only

Every LayerNorm has eps = 1e-6 (timm's and the original JAX code's; PyTorch's default is 1e-5).

Module and parameter names follow timm's ``VisionTransformer`` exactly, so a timm state dict
loads with ``strict=True``: ``cls_token`` (1, 1, D), ``pos_embed`` (1, T, D),
``patch_embed.proj`` (Conv2d-shaped), ``blocks.i.norm1``, ``blocks.i.attn.qkv`` (D -> 3D),
``blocks.i.attn.proj``, ``blocks.i.norm2``, ``blocks.i.mlp.fc1``, ``blocks.i.mlp.fc2``, ``norm``,
``head``.

Cost accounting (Task 2.5) counts what ``torch.utils.flop_counter.FlopCounterMode`` counts: every
matrix product (linear layers, convolutions, the two attention products) at 2 FLOPs per
multiply-add. LayerNorm, softmax, GELU, additions and the bias of a linear layer are not counted.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vitcourse.attention import ScaledDotProductAttention
from vitcourse.patches import PatchEmbedding
from vitcourse.positions import resize_pos_embed, sincos_1d, sincos_2d

LN_EPS = 1e-6
POS_EMBED_TYPES = ("learn", "sincos1d", "sincos2d", "none")


def to_2tuple(size: int | tuple[int, int]) -> tuple[int, int]:
    """32 -> (32, 32); (32, 48) stays (32, 48)."""
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def init_vit_weights(module: nn.Module) -> None:
    """timm's default ViT initialisation for one module (use with ``model.apply``)."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class Attention(nn.Module):
    """Multi-head self-attention with one fused query/key/value projection (timm's layout).

    Submodules:
        qkv:  nn.Linear(dim, 3 * dim, bias=qkv_bias); output features [q | k | v], each split
              into heads as in Week 1 (head h owns features h*Dh .. (h+1)*Dh - 1 of its third).
        core: Week 1's ``ScaledDotProductAttention(head_dim, dropout)``.
        proj: nn.Linear(dim, dim), the output projection W^O.

    Args:
        dim: D.
        num_heads: nH; must divide D.
        qkv_bias: whether qkv has a bias.
        dropout: dropout on the attention weights, passed on to ``core`` (training mode only).

    Raises:
        ValueError: when num_heads does not divide dim (not an ``assert``).
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        raise NotImplementedError('Week 2 · Task 2.4: implement Attention.__init__ in src/vitcourse/vit.py')

    def forward(self, x: Tensor) -> Tensor:
        """(B, T, D) -> (B, T, D)."""
        raise NotImplementedError('Week 2 · Task 2.4: implement Attention.forward in src/vitcourse/vit.py')


class Mlp(nn.Module):
    """fc2(dropout(GELU(fc1(x)))), then dropout; the GELU is the exact (erf) one.

    Submodules: fc1 nn.Linear(dim, hidden_dim), act nn.GELU(), fc2 nn.Linear(hidden_dim, dim),
    drop nn.Dropout(dropout) (so the dropout acts in training mode only).
    """

    def __init__(self, dim: int, hidden_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        raise NotImplementedError('Week 2 · Task 2.4: implement Mlp.__init__ in src/vitcourse/vit.py')

    def forward(self, x: Tensor) -> Tensor:
        """(B, T, D) -> (B, T, D)."""
        raise NotImplementedError('Week 2 · Task 2.4: implement Mlp.forward in src/vitcourse/vit.py')


class Block(nn.Module):
    """One pre-norm transformer encoder layer: x + MSA(LN(x)), then x + MLP(LN(x)).

    Submodules: norm1, attn (:class:`Attention`), norm2, mlp (:class:`Mlp`, hidden width
    ``int(dim * mlp_ratio)``); both norms are ``nn.LayerNorm(dim, eps=1e-6)``.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 dropout: float = 0.0) -> None:
        super().__init__()
        raise NotImplementedError('Week 2 · Task 2.4: implement Block.__init__ in src/vitcourse/vit.py')

    def forward(self, x: Tensor) -> Tensor:
        """(B, T, D) -> (B, T, D)."""
        raise NotImplementedError('Week 2 · Task 2.4: implement Block.forward in src/vitcourse/vit.py')


class VisionTransformer(nn.Module):
    """ViT for classification: patch embedding, CLS token, positions, pre-norm blocks, head.

    Args:
        img_size: the training resolution, int or (H, W); sets the size of ``pos_embed``.
        patch_size: P; must divide H and W.
        in_chans: C.
        num_classes: K.
        embed_dim: D.
        depth: number of blocks.
        num_heads: nH.
        mlp_ratio: M / D.
        qkv_bias: bias in the fused qkv projection.
        pos_embed: ``"learn"`` (a trainable (1, T, D) table, trunc-normal std 0.02),
            ``"sincos1d"`` / ``"sincos2d"`` (the fixed tables, stored as a non-trainable
            ``pos_embed`` with a zero row for the CLS token), or ``"none"`` (no positions;
            ``pos_embed`` is None).
        dropout: on attention weights and MLP outputs, in training mode only (``model.eval()``
            gives the same outputs as dropout=0).

    Submodules / parameters: ``patch_embed`` (:class:`PatchEmbedding`), ``cls_token``,
    ``pos_embed``, ``blocks`` (an ``nn.Sequential`` of :class:`Block`), ``norm``, ``head``.

    Initialisation (timm's): ``cls_token`` normal with std 1e-6; a learned ``pos_embed``
    trunc-normal with std 0.02; every ``nn.Linear`` weight trunc-normal with std 0.02 and its
    bias 0 (:func:`init_vit_weights`); LayerNorms and ``patch_embed.proj`` keep PyTorch's
    defaults.

    Device and dtype: every table is a parameter of the model (the fixed sin/cos tables too, as
    non-trainable ones), so ``model.to(device, dtype)`` moves and casts all of it, and ``forward``
    returns logits on the model's device, in its dtype.

    Attributes ``grid_size`` (h, w) and ``num_patches`` N describe the training resolution.
    ``forward`` also accepts other sizes (multiples of P): the position table is then resized
    with :func:`~vitcourse.positions.resize_pos_embed`.
    """

    def __init__(self, img_size: int | tuple[int, int] = 32, patch_size: int = 4, in_chans: int = 3,
                 num_classes: int = 10, embed_dim: int = 192, depth: int = 6, num_heads: int = 3,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, pos_embed: str = "learn",
                 dropout: float = 0.0) -> None:
        super().__init__()
        if pos_embed not in POS_EMBED_TYPES:
            raise ValueError(f"pos_embed={pos_embed!r}: expected one of {POS_EMBED_TYPES}")
        height, width = to_2tuple(img_size)
        if height % patch_size or width % patch_size:
            raise ValueError(f"img_size {height}x{width} is not divisible by patch_size={patch_size}")
        self.img_size = (height, width)
        self.patch_size = patch_size
        self.grid_size = (height // patch_size, width // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.pos_embed_type = pos_embed
        raise NotImplementedError('Week 2 · Task 2.4: implement VisionTransformer.__init__ in src/vitcourse/vit.py')

    def position_table(self, grid_size: tuple[int, int]) -> Tensor:
        """The (1, 1 + h*w, D) table for an h x w grid: ``pos_embed`` itself at the training grid,
        resized (bilinear, CLS row kept apart) at any other."""
        raise NotImplementedError('Week 2 · Task 2.4: implement VisionTransformer.position_table in src/vitcourse/vit.py')

    def forward_features(self, images: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, T, D): all tokens after the final LayerNorm, CLS first."""
        raise NotImplementedError('Week 2 · Task 2.4: implement VisionTransformer.forward_features in src/vitcourse/vit.py')

    def forward(self, images: Tensor) -> Tensor:
        """(B, C, H, W) -> logits (B, K), from the CLS token."""
        raise NotImplementedError('Week 2 · Task 2.4: implement VisionTransformer.forward in src/vitcourse/vit.py')


# ---------------------------------------------------------------------------- Task 2.5: cost
def num_patches(img_size: int | tuple[int, int], patch_size: int) -> int:
    """N = (H / P) * (W / P), the number of patch tokens (the CLS token not included)."""
    raise NotImplementedError('Week 2 · Task 2.5: implement num_patches in src/vitcourse/vit.py')


def vit_num_params(img_size: int | tuple[int, int] = 32, patch_size: int = 4, in_chans: int = 3,
                   num_classes: int = 10, embed_dim: int = 192, depth: int = 6, num_heads: int = 3,
                   mlp_ratio: float = 4.0, qkv_bias: bool = True, pos_embed: str = "learn",
                   dropout: float = 0.0) -> int:
    """Trainable parameters of ``VisionTransformer(**same arguments)``, from the formula.

    Takes exactly VisionTransformer's arguments, so ``vit_num_params(**config)`` works for any
    ``config`` the model accepts. Only a ``"learn"`` position table is trainable.
    """
    raise NotImplementedError('Week 2 · Task 2.5: implement vit_num_params in src/vitcourse/vit.py')


def vit_flops(img_size: int | tuple[int, int] = 32, patch_size: int = 4, in_chans: int = 3,
              num_classes: int = 10, embed_dim: int = 192, depth: int = 6, num_heads: int = 3,
              mlp_ratio: float = 4.0, qkv_bias: bool = True, pos_embed: str = "learn",
              dropout: float = 0.0) -> int:
    """FLOPs of one forward pass on one image of size ``img_size`` (2 per multiply-add).

    Counts every matrix product the model does, as ``FlopCounterMode`` does: the patch
    embedding, per block the qkv projection, Q K^T, weights @ V, the output projection and the
    two MLP layers, and the head (on the CLS token only). The number of heads does not change
    the count: nH heads of width D/nH cost what one head of width D costs.
    """
    raise NotImplementedError('Week 2 · Task 2.5: implement vit_flops in src/vitcourse/vit.py')
