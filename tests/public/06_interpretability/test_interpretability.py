"""Week 6 public tests: quick checks you can run while you work.

    vitgrade check 6            # a table with hints
    pytest tests/public/06_interpretability

They check shapes, a few values you can work out by hand, and that the model is left alone. Passing
them means the basics are in place; the hidden tests (weights against a recomputation from qkv on
your Week 2 ViT and on timm's with fused attention, rollout and the gradient rule against their
formulas, gradients against autograd, statistics on hand-built patterns, ablation against zeroed
weights, deletion curves of a model built to look at one patch) decide the grade.
"""

import math

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

from vitcourse.ablation import HeadAblation, head_importance
from vitcourse.attention_maps import AttentionRecorder
from vitcourse.faithfulness import delete_patches, deletion_auc, deletion_curve, mass_inside, pointing_game
from vitcourse.gradient_attention import gradient_weighted_attention, gradient_weighted_rule
from vitcourse.head_stats import attention_entropy, cls_attention, mean_attention_distance
from vitcourse.rollout import attention_rollout, cls_relevance

CONFIG = dict(img_size=16, patch_size=4, embed_dim=16, depth=2, num_heads=2, mlp_ratio=2.0, num_classes=3)


def tiny_vit() -> VisionTransformer:
    torch.manual_seed(0)
    return VisionTransformer(**CONFIG).eval()


def hooks(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.mark.task("6.1")
def test_recorder_shapes_and_rows():
    model, images = tiny_vit(), torch.rand(3, 3, 16, 16)
    with torch.no_grad(), AttentionRecorder(model) as recorder:
        model(images)
    assert len(recorder.weights) == 2, "one tensor per block"
    assert recorder.weights[0].shape == (3, 2, 17, 17), "(B, nH, T, T) with T = 16 patches + CLS"
    assert torch.allclose(recorder.weights[0].sum(-1), torch.ones(3, 2, 17), atol=1e-5), "rows are softmax weights"


@pytest.mark.task("6.1")
def test_recorder_leaves_the_model_as_found():
    model, images = tiny_vit(), torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        before = model(images)
        with AttentionRecorder(model):
            inside = model(images)
        after = model(images)
    assert torch.allclose(inside, before, atol=1e-5), "recording must not change the logits"
    assert torch.equal(after, before)
    assert hooks(model) == 0, "every hook removed on exit"
    assert all(b.attn.fused_attn for b in model.blocks), "timm's fused_attn flags back as they were (True)"


@pytest.mark.task("6.2")
def test_rollout_by_hand():
    eye = torch.eye(5).expand(3, 2, 4, 5, 5)
    assert torch.allclose(attention_rollout(eye), torch.eye(5).expand(2, 5, 5)), "identity attention: identity"
    one = torch.rand(1, 1, 2, 5, 5).softmax(-1)
    expected = 0.5 * one[0].mean(1) + 0.5 * torch.eye(5)
    assert torch.allclose(attention_rollout(one), expected, atol=1e-6), "one block: (A + I) / 2"
    rolled = attention_rollout(torch.rand(3, 2, 2, 5, 5).softmax(-1), head_fusion="min")
    assert torch.allclose(rolled.sum(-1), torch.ones(2, 5), atol=1e-5), "rows sum to 1 (renormalised)"


@pytest.mark.task("6.2")
def test_cls_relevance_shape():
    matrix = torch.rand(2, 1 + 6, 1 + 6)
    assert cls_relevance(matrix, (2, 3)).shape == (2, 2, 3)
    assert torch.equal(cls_relevance(matrix, (2, 3))[0, 1, 0], matrix[0, 0, 4]), "raster order, CLS skipped"


@pytest.mark.task("6.3")
def test_gradient_rule_with_zero_gradient_is_identity():
    attention = torch.rand(2, 3, 2, 4, 4).softmax(-1)
    got = gradient_weighted_rule(attention, torch.zeros_like(attention))
    assert torch.allclose(got, torch.eye(4).expand(3, 4, 4))


@pytest.mark.task("6.3")
def test_gradient_weighted_attention_shapes():
    model = tiny_vit()
    relevance, logits = gradient_weighted_attention(model, torch.rand(2, 3, 16, 16))
    assert relevance.shape == (2, 17, 17) and logits.shape == (2, 3)
    assert all(p.grad is None for p in model.parameters()), "no parameter gets a .grad"
    assert hooks(model) == 0


@pytest.mark.task("6.4")
def test_statistics_by_hand():
    n = 9
    eye = torch.zeros(1, 2, n + 1, n + 1)
    eye[:, :, 1:, 1:] = torch.eye(n)
    eye[:, :, 0, 0] = 1
    uniform = torch.full((1, 2, n + 1, n + 1), 1 / (n + 1))
    assert torch.allclose(mean_attention_distance(eye, (3, 3), 4), torch.zeros(2))
    assert torch.allclose(attention_entropy(eye), torch.zeros(2), atol=1e-6)
    assert torch.allclose(attention_entropy(uniform), torch.full((2,), math.log(n))), "log N, in nats"
    assert torch.allclose(cls_attention(uniform), torch.full((2,), 1 / (n + 1)))


@pytest.mark.task("6.5")
def test_ablating_a_silent_head_changes_nothing():
    model, images = tiny_vit(), torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        model.blocks[1].attn.proj.weight[:, 8:] = 0  # head 1 of block 1 writes nothing
        before = model(images)
        with HeadAblation(model, [(1, 1)]):
            ablated = model(images)
    assert torch.allclose(ablated, before, atol=1e-6)
    assert hooks(model) == 0


@pytest.mark.task("6.5")
def test_head_importance_shapes():
    model = tiny_vit()
    result = head_importance(model, torch.rand(6, 3, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2]), progress=False)
    assert result["delta_loss"].shape == (2, 2) and result["delta_accuracy"].shape == (2, 2)
    assert sorted(map(tuple, result["ranking"])) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert not model.training


@pytest.mark.task("6.6")
def test_delete_patches_by_hand():
    images = torch.rand(1, 3, 8, 8)
    relevance = torch.tensor([[[0.0, 1.0], [0.5, 0.2]]])  # the top-right patch first
    out = delete_patches(images, relevance, 1, 4)
    assert torch.allclose(out[0, :, :4, 4:], images[0].mean(dim=(1, 2))[:, None, None].expand(3, 4, 4))
    assert torch.equal(out[0, :, 4:], images[0, :, 4:]) and torch.equal(out[0, :, :4, :4], images[0, :, :4, :4])
    assert torch.equal(delete_patches(images, relevance, 0, 4), images)


@pytest.mark.task("6.6")
def test_scores_by_hand():
    fraction = torch.tensor([[[0.0, 1.0], [0.6, 0.1]]])
    assert pointing_game(torch.tensor([[[0.0, 2.0], [1.0, 0.0]]]), fraction).tolist() == [True]
    assert pointing_game(torch.tensor([[[3.0, 2.0], [1.0, 0.0]]]), fraction).tolist() == [False]
    assert torch.allclose(mass_inside(torch.tensor([[[1.0, 1.0], [1.0, 1.0]]]), fraction), torch.tensor([0.5]))
    assert math.isclose(deletion_auc([0, 2, 4], [1.0, 1.0, 1.0], 4), 1.0, rel_tol=1e-6)
    model = tiny_vit()
    ks, accuracy = deletion_curve(model, torch.rand(4, 3, 16, 16), torch.zeros(4, dtype=torch.long),
                                  torch.rand(4, 4, 4), 4, steps=[0, 8, 16])
    assert ks.tolist() == [0, 8, 16] and accuracy.shape == (3,)
