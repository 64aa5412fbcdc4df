"""Week 6 · Task 6.3: gradient-weighted attention (Chefer, Gur & Wolf, "Generic Attention-model
Explainability for Interpreting Bi-Modal and Encoder-Decoder Transformers", ICCV 2021, arXiv 2103.15679).

Shapes: L blocks, B batch, nH heads, T tokens (CLS first), K classes.

Rollout (Task 6.2) uses the attention weights alone, so it draws the same map whichever class you
ask about, and treats every head as equally important. Chefer, Gur and Wolf weight each attention
weight by the gradient of the class score with respect to it, keep only the positive part (what
speaks *for* class c), average over the heads, and accumulate the result through the blocks with the
residual built in: with R = I (T x T) at the start, for every block l = 1 .. L in order,

    A_bar_l = mean_h( (dy_c / dA_l  *  A_l)^+ )          (B, T, T); ^+ = max(., 0), taken per head
    R       = R + A_bar_l @ R                            (B, T, T)

Row 0 of R, patch columns, is the relevance map for class c (``rollout.cls_relevance``). Their
earlier CVPR 2021 paper ("Transformer Interpretability Beyond Attention Visualization", arXiv
2012.09838) propagates LRP relevance through every layer instead of using the attention gradient
alone; this rule is the simpler, model-agnostic one of the ICCV paper.

dy_c / dA_l comes from autograd: record the weights *with* their graph (``AttentionRecorder(model,
detach=False)``, Task 6.1) and call ``torch.autograd.grad(score, weights)``. Nothing else needs a
gradient: in particular the model's parameters must not receive any (``.grad`` stays as it was).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from vitcourse.attention_maps import AttentionRecorder


def gradient_weighted_rule(attentions: Tensor | Sequence[Tensor], gradients: Tensor | Sequence[Tensor]) -> Tensor:
    """The relevance R (B, T, T) from every block's weights A and gradients dy_c/dA.

    Args:
        attentions: L tensors (B, nH, T, T) (or one (L, B, nH, T, T)), in block order.
        gradients: the same shapes: d(class score)/d(weights), block by block.

    Returns:
        R = (I + A_bar_L) ... (I + A_bar_1) applied as ``R <- R + A_bar_l @ R`` from block 1 to block L,
        A_bar_l = mean over heads of (gradient * attention) clamped at 0. Detached from any graph.

    Raises:
        ValueError: when the two do not have the same shape.
    """
    ### BEGIN SOLUTION [Week 6 · Task 6.3]
    attention = attentions if isinstance(attentions, Tensor) else torch.stack(list(attentions))
    gradient = gradients if isinstance(gradients, Tensor) else torch.stack(list(gradients))
    if attention.shape != gradient.shape or attention.ndim != 5:
        raise ValueError(f"attentions {tuple(attention.shape)} and gradients {tuple(gradient.shape)} must both be "
                         "(L, B, nH, T, T)")
    attention, gradient = attention.detach(), gradient.detach()
    batch, tokens = attention.shape[1], attention.shape[-1]
    relevance = torch.eye(tokens, dtype=attention.dtype, device=attention.device).expand(batch, tokens, tokens)
    for a, g in zip(attention, gradient):  # block 1 first
        a_bar = (g * a).clamp(min=0).mean(dim=1)  # (B, T, T): the positive part per head, then the mean
        relevance = relevance + a_bar @ relevance
    return relevance
    ### END SOLUTION


def gradient_weighted_attention(model: nn.Module, images: Tensor, target: int | Tensor | None = None
                                ) -> tuple[Tensor, Tensor]:
    """Gradient-weighted attention relevance of ``model`` for class ``target``: (R (B, T, T), logits (B, K)).

    One forward pass with the weights recorded in the graph (Task 6.1's recorder, ``detach=False``), the
    score ``sum_b logits[b, c_b]`` (images do not interact, so each image's gradient is its own), one
    ``torch.autograd.grad`` with respect to the recorded weights only, then :func:`gradient_weighted_rule`.

    Args:
        model: a ViT that :class:`~vitcourse.attention_maps.AttentionRecorder` can read, run as it is
            (call ``model.eval()`` first).
        images: (B, C, H, W), the model's input.
        target: the class to explain: None = each image's predicted class (argmax of its logits), an int =
            that class for every image, a (B,) int64 tensor = one class per image.

    Returns:
        R (B, T, T) and the logits (B, K), both detached. The parameters' ``.grad`` are left untouched.
    """
    ### BEGIN SOLUTION [Week 6 · Task 6.3]
    images = images.detach().requires_grad_(True)  # a graph even when every parameter is frozen
    with torch.enable_grad(), AttentionRecorder(model, detach=False) as recorder:
        logits = model(images)  # (B, K)
    if target is None:
        classes = logits.argmax(dim=-1)
    elif isinstance(target, Tensor):
        classes = target.to(device=logits.device, dtype=torch.long)
    else:
        classes = torch.full((logits.shape[0],), int(target), dtype=torch.long, device=logits.device)
    score = logits.gather(1, classes[:, None]).sum()  # each image's own class score; images are independent
    gradients = torch.autograd.grad(score, recorder.weights)  # only w.r.t. the weights: no parameter .grad
    return gradient_weighted_rule(recorder.weights, gradients), logits.detach()
    ### END SOLUTION
