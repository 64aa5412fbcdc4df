"""Week 3 · Knowledge distillation: Hinton's soft targets and DeiT's distillation token.

Shapes: B batch, K classes, N patches, D width; T = N + 2 tokens in the distilled ViT (the CLS token,
then the distillation token, then the patches).

**Soft distillation** (Hinton, Vinyals & Dean 2015). The student matches the teacher's whole output
distribution, softened by a temperature T:

    L_soft = T^2 * KL( softmax(z_t / T) || softmax(z_s / T) )        KL averaged over the batch ("batchmean")

The gradient of the KL term with respect to the student's logits shrinks like 1/T^2 as T grows; the
factor T^2 keeps the term's weight independent of T, so alpha means the same at T = 2 and T = 16.
``batchmean`` (the sum over classes, averaged over samples) is the KL divergence; ``reduction="mean"``
would also divide by K.

**Hard distillation** (Touvron et al. 2021, DeiT, eq. 3): the teacher's *decision* y_t = argmax z_t is
used as a label, ``L_hard = CE(z_s, y_t)``.

**The distillation token** (DeiT, section 4): a second learned token next to the CLS token, with its
own head ``head_dist``. The CLS head learns from the true labels, the distillation head from the
teacher:

    L = (1 - alpha) * CE(z_cls, y) + alpha * L_teacher(z_dist)        (alpha = 1/2 in DeiT)

While training the model returns both logits, (z_cls, z_dist); at evaluation it returns their mean,
exactly as timm's ``VisionTransformerDistilled`` does (in its distilled-training mode).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vitcourse.augment import soft_target_cross_entropy
from vitcourse.positions import resize_pos_embed
from vitcourse.vit import VisionTransformer, init_vit_weights

DISTILLATION_KINDS = ("soft", "hard")


def soft_distillation_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """Hinton's term: ``T^2 * KL(softmax(teacher / T) || softmax(student / T))``, batchmean.

    Args:
        student_logits: (B, K).
        teacher_logits: (B, K); treated as a constant (no gradient flows into the teacher).
        temperature: T > 0.

    Returns:
        a float32 0-d tensor: the sum over classes of p_t * (log p_t - log p_s), averaged over the B
        samples, times T^2; computed in float32 whatever the logits' dtype (bfloat16 under autocast).
    """
    raise NotImplementedError('Week 3 · Task 3.4: implement soft_distillation_loss in src/vitcourse/distill.py')


def hard_distillation_loss(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """DeiT's hard-label term: cross-entropy of the student against the teacher's argmax class.

    Args:
        student_logits: (B, K).
        teacher_logits: (B, K).

    Returns:
        a float32 0-d tensor, ``F.cross_entropy(student_logits, teacher_logits.argmax(-1))`` computed in
        float32 whatever the logits' dtype.
    """
    raise NotImplementedError('Week 3 · Task 3.4: implement hard_distillation_loss in src/vitcourse/distill.py')


def distillation_loss(outputs: Tensor | tuple[Tensor, Tensor], teacher_logits: Tensor, targets: Tensor,
                      kind: str = "hard", alpha: float = 0.5, temperature: float = 1.0) -> Tensor:
    """``(1 - alpha) * CE(z_cls, targets) + alpha * L_teacher(z_dist, teacher_logits)``.

    Args:
        outputs: (z_cls, z_dist), each (B, K), from a model with a distillation token; or one (B, K)
            tensor from a plain model, used as both (Hinton's setting).
        teacher_logits: (B, K).
        targets: (B,) class indices (plain cross-entropy) or (B, K) soft targets
            (:func:`~vitcourse.augment.soft_target_cross_entropy`, e.g. after Mixup/CutMix).
        kind: "soft" (:func:`soft_distillation_loss` at ``temperature``) or "hard"
            (:func:`hard_distillation_loss`).
        alpha: the teacher's weight, in [0, 1].

    Returns:
        a float32 0-d tensor (every term in float32, as above).

    Raises:
        ValueError: for any other ``kind``.
    """
    raise NotImplementedError('Week 3 · Task 3.4: implement distillation_loss in src/vitcourse/distill.py')


class DistillationLoss:
    """The loop's criterion for distillation: ``criterion(images, outputs, targets)`` asks the teacher
    (in eval mode, without gradients) for its logits on the same images the student saw, then
    returns :func:`distillation_loss`. The images are there for this reason (DeiT's convention)."""

    def __init__(self, teacher: nn.Module, kind: str = "hard", alpha: float = 0.5, temperature: float = 1.0) -> None:
        self.teacher = teacher.eval()
        self.kind, self.alpha, self.temperature = kind, alpha, temperature

    def __call__(self, images: Tensor, outputs: Tensor | tuple[Tensor, Tensor], targets: Tensor) -> Tensor:
        with torch.no_grad():
            teacher_logits = self.teacher(images).float()  # (B, K)
        return distillation_loss(outputs, teacher_logits, targets, self.kind, self.alpha, self.temperature)


class DistilledVisionTransformer(VisionTransformer):
    """DeiT: a :class:`~vitcourse.vit.VisionTransformer` with a distillation token and a second head.

    Takes VisionTransformer's arguments; only learned positions (``pos_embed="learn"``) are supported.

    Parameters added or changed (timm's ``VisionTransformerDistilled`` names, so its state dict loads
    with ``strict=True``):

    * ``dist_token`` (1, 1, D), trunc-normal std 0.02;
    * ``pos_embed`` (1, N + 2, D), trunc-normal std 0.02: rows 0 and 1 belong to the CLS and the
      distillation token, rows 2.. to the patches;
    * ``head_dist`` nn.Linear(D, K), initialised like ``head`` (trunc-normal std 0.02, zero bias).

    Forward: tokens ``[cls; dist; patches]`` plus ``pos_embed`` (resized, with both prefix rows kept
    apart, at another image size), the blocks, the final norm; then ``z_cls = head(token 0)`` and
    ``z_dist = head_dist(token 1)``. In training mode ``forward`` returns ``(z_cls, z_dist)``; in eval
    mode ``(z_cls + z_dist) / 2``.

    Raises:
        ValueError: when ``pos_embed`` is not "learn".
    """

    def __init__(self, img_size: int | tuple[int, int] = 32, patch_size: int = 4, in_chans: int = 3,
                 num_classes: int = 10, embed_dim: int = 192, depth: int = 6, num_heads: int = 3,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, pos_embed: str = "learn",
                 dropout: float = 0.0) -> None:
        if pos_embed != "learn":
            raise ValueError(f"DistilledVisionTransformer supports only learned positions, not pos_embed={pos_embed!r}")
        super().__init__(img_size, patch_size, in_chans, num_classes, embed_dim, depth, num_heads, mlp_ratio,
                         qkv_bias, pos_embed, dropout)
        raise NotImplementedError('Week 3 · Task 3.4: implement DistilledVisionTransformer.__init__ in src/vitcourse/distill.py')

    def position_table(self, grid_size: tuple[int, int]) -> Tensor:
        """The (1, 2 + h*w, D) table for an h x w grid (both prefix rows kept out of the resize)."""
        raise NotImplementedError('Week 3 · Task 3.4: implement DistilledVisionTransformer.position_table in src/vitcourse/distill.py')

    def forward_features(self, images: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, T, D) with T = N + 2: all tokens after the final LayerNorm, [cls, dist, patches]."""
        raise NotImplementedError('Week 3 · Task 3.4: implement DistilledVisionTransformer.forward_features in src/vitcourse/distill.py')

    def forward(self, images: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """(B, C, H, W) -> (z_cls, z_dist), each (B, K), in training mode; their mean (B, K) in eval mode."""
        raise NotImplementedError('Week 3 · Task 3.4: implement DistilledVisionTransformer.forward in src/vitcourse/distill.py')
