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
        ### BEGIN SOLUTION [Week 2 · Task 2.4]
        if dim % num_heads:
            raise ValueError(f"dim={dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.core = ScaledDotProductAttention(self.head_dim, dropout)
        self.proj = nn.Linear(dim, dim)
        ### END SOLUTION

    def forward(self, x: Tensor) -> Tensor:
        """(B, T, D) -> (B, T, D)."""
        ### BEGIN SOLUTION [Week 2 · Task 2.4]
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim)  # (B, T, 3, nH, Dh)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, nH, T, Dh)
        context, _ = self.core(q, k, v)  # (B, nH, T, Dh)
        context = context.transpose(1, 2).reshape(batch, tokens, dim)  # (B, T, D): heads merged
        return self.proj(context)  # (B, T, D)
        ### END SOLUTION


class Mlp(nn.Module):
    """fc2(dropout(GELU(fc1(x)))), then dropout; the GELU is the exact (erf) one.

    Submodules: fc1 nn.Linear(dim, hidden_dim), act nn.GELU(), fc2 nn.Linear(hidden_dim, dim),
    drop nn.Dropout(dropout) (so the dropout acts in training mode only).
    """

    def __init__(self, dim: int, hidden_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        ### BEGIN SOLUTION [Week 2 · Task 2.4]
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()  # exact: 0.5 x (1 + erf(x / sqrt 2)), not the tanh approximation
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(dropout)
        ### END SOLUTION

    def forward(self, x: Tensor) -> Tensor:
        """(B, T, D) -> (B, T, D)."""
        ### BEGIN SOLUTION [Week 2 · Task 2.4]
        x = self.drop(self.act(self.fc1(x)))  # (B, T, M)
        return self.drop(self.fc2(x))  # (B, T, D)
        ### END SOLUTION


class Block(nn.Module):
    """One pre-norm transformer encoder layer: x + MSA(LN(x)), then x + MLP(LN(x)).

    Submodules: norm1, attn (:class:`Attention`), norm2, mlp (:class:`Mlp`, hidden width
    ``int(dim * mlp_ratio)``); both norms are ``nn.LayerNorm(dim, eps=1e-6)``.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 dropout: float = 0.0) -> None:
        super().__init__()
        ### BEGIN SOLUTION [Week 2 · Task 2.4]
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, num_heads, qkv_bias, dropout)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dropout)
        ### END SOLUTION

    def forward(self, x: Tensor) -> Tensor:
        """(B, T, D) -> (B, T, D)."""
        ### BEGIN SOLUTION [Week 2 · Task 2.4]
        x = x + self.attn(self.norm1(x))  # the residual stream itself is never normalised
        return x + self.mlp(self.norm2(x))
        ### END SOLUTION


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
        ### BEGIN SOLUTION [Week 2 · Task 2.4]
        self.patch_embed = PatchEmbedding(patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        if pos_embed == "learn":
            self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches + 1, embed_dim))
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        elif pos_embed == "none":
            self.register_parameter("pos_embed", None)
        else:
            grid = (sincos_1d(self.num_patches, embed_dim) if pos_embed == "sincos1d"
                    else sincos_2d(*self.grid_size, embed_dim))  # (N, D)
            table = torch.cat([torch.zeros(1, embed_dim), grid])[None]  # (1, T, D): CLS row 0
            self.pos_embed = nn.Parameter(table, requires_grad=False)
        self.blocks = nn.Sequential(*[Block(embed_dim, num_heads, mlp_ratio, qkv_bias, dropout)
                                      for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=LN_EPS)
        self.head = nn.Linear(embed_dim, num_classes)
        self.apply(init_vit_weights)
        nn.init.normal_(self.cls_token, std=1e-6)
        ### END SOLUTION

    def position_table(self, grid_size: tuple[int, int]) -> Tensor:
        """The (1, 1 + h*w, D) table for an h x w grid: ``pos_embed`` itself at the training grid,
        resized (bilinear, CLS row kept apart) at any other."""
        ### BEGIN SOLUTION [Week 2 · Task 2.4]
        if tuple(grid_size) == self.grid_size:
            return self.pos_embed
        return resize_pos_embed(self.pos_embed, grid_size, self.grid_size, num_prefix_tokens=1)
        ### END SOLUTION

    def forward_features(self, images: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, T, D): all tokens after the final LayerNorm, CLS first."""
        ### BEGIN SOLUTION [Week 2 · Task 2.4]
        batch, _, height, width = images.shape
        x = self.patch_embed(images)  # (B, N, D)
        cls = self.cls_token.expand(batch, -1, -1)  # (B, 1, D)
        x = torch.cat([cls, x], dim=1)  # (B, T, D): prepend CLS first ...
        if self.pos_embed is not None:  # ... then add the positions (row 0 is the CLS token's)
            x = x + self.position_table((height // self.patch_size, width // self.patch_size))
        x = self.blocks(x)  # (B, T, D)
        return self.norm(x)
        ### END SOLUTION

    def forward(self, images: Tensor) -> Tensor:
        """(B, C, H, W) -> logits (B, K), from the CLS token."""
        ### BEGIN SOLUTION [Week 2 · Task 2.4]
        return self.head(self.forward_features(images)[:, 0])  # (B, K)
        ### END SOLUTION


# ---------------------------------------------------------------------------- Task 2.5: cost
def num_patches(img_size: int | tuple[int, int], patch_size: int) -> int:
    """N = (H / P) * (W / P), the number of patch tokens (the CLS token not included)."""
    ### BEGIN SOLUTION [Week 2 · Task 2.5]
    height, width = to_2tuple(img_size)
    return (height // patch_size) * (width // patch_size)
    ### END SOLUTION


def vit_num_params(img_size: int | tuple[int, int] = 32, patch_size: int = 4, in_chans: int = 3,
                   num_classes: int = 10, embed_dim: int = 192, depth: int = 6, num_heads: int = 3,
                   mlp_ratio: float = 4.0, qkv_bias: bool = True, pos_embed: str = "learn",
                   dropout: float = 0.0) -> int:
    """Trainable parameters of ``VisionTransformer(**same arguments)``, from the formula.

    Takes exactly VisionTransformer's arguments, so ``vit_num_params(**config)`` works for any
    ``config`` the model accepts. Only a ``"learn"`` position table is trainable.
    """
    ### BEGIN SOLUTION [Week 2 · Task 2.5]
    n, d, c, p, k = num_patches(img_size, patch_size), embed_dim, in_chans, patch_size, num_classes
    m = int(d * mlp_ratio)
    embed = p * p * c * d + d  # patch_embed.proj: weight + bias
    tokens = d + ((n + 1) * d if pos_embed == "learn" else 0)  # cls_token (+ pos_embed)
    block = (2 * d  # norm1
             + 3 * d * d + (3 * d if qkv_bias else 0)  # attn.qkv
             + d * d + d  # attn.proj
             + 2 * d  # norm2
             + d * m + m + m * d + d)  # mlp.fc1, mlp.fc2
    return embed + tokens + depth * block + 2 * d + d * k + k  # + norm + head
    ### END SOLUTION


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
    ### BEGIN SOLUTION [Week 2 · Task 2.5]
    n, d, c, p, k = num_patches(img_size, patch_size), embed_dim, in_chans, patch_size, num_classes
    t, m = n + 1, int(d * mlp_ratio)
    embed = 2 * n * (p * p * c) * d  # (N, P*P*C) @ (P*P*C, D)
    qkv = 2 * t * d * 3 * d  # (T, D) @ (D, 3D)
    scores = 2 * t * t * d  # Q K^T: nH heads x (T, Dh) @ (Dh, T)
    mix = 2 * t * t * d  # weights @ V: nH heads x (T, T) @ (T, Dh)
    proj = 2 * t * d * d
    mlp = 2 * t * d * m + 2 * t * m * d
    head = 2 * d * k  # CLS token only
    return embed + depth * (qkv + scores + mix + proj + mlp) + head
    ### END SOLUTION
