"""Week 1 public tests: quick checks you can run while you work.

    vitgrade check 1            # a table with hints
    pytest tests/public/01_attention  # plain pytest (or: python3 course.py test 1)

They check shapes, normalisation and one case small enough to do by hand. Passing them
means the basics are in place; the hidden tests (parity with torch, masking, dropout,
gradients, the reverse-sequence task) decide the grade.
"""

import math

import pytest
import torch

from vitcourse.attention import MultiHeadAttention, ScaledDotProductAttention


@pytest.mark.task("1.1")
def test_sdpa_shapes():
    attn = ScaledDotProductAttention(head_dim=4)
    q, k, v = torch.randn(2, 3, 5, 4), torch.randn(2, 3, 7, 4), torch.randn(2, 3, 7, 4)
    context, weights = attn(q, k, v)
    assert context.shape == (2, 3, 5, 4), "context should be (B, H, Lq, Dh)"
    assert weights.shape == (2, 3, 5, 7), "weights should be (B, H, Lq, Lk): one row per query"


@pytest.mark.task("1.1")
def test_sdpa_rows_sum_to_one():
    attn = ScaledDotProductAttention(head_dim=4).eval()
    _, weights = attn(torch.randn(2, 3, 5, 4), torch.randn(2, 3, 7, 4), torch.randn(2, 3, 7, 4))
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 5),
                               msg="each query's weights over the keys must sum to 1 (softmax over the last axis)")


@pytest.mark.task("1.1")
def test_sdpa_by_hand():
    # One head, Dh=2. Query [1, 0] meets keys [2, 0] and [0, 0]: scores 2/sqrt(2) and 0.
    q = torch.tensor([[[[1.0, 0.0]]]])
    k = torch.tensor([[[[2.0, 0.0], [0.0, 0.0]]]])
    v = torch.tensor([[[[10.0, 0.0], [0.0, 10.0]]]])
    context, weights = ScaledDotProductAttention(head_dim=2).eval()(q, k, v)
    w0 = math.exp(math.sqrt(2)) / (math.exp(math.sqrt(2)) + 1)  # softmax([sqrt 2, 0])[0]
    torch.testing.assert_close(weights, torch.tensor([[[[w0, 1 - w0]]]]),
                               msg="scores are q.k / sqrt(Dh), then a softmax over the keys")
    torch.testing.assert_close(context, torch.tensor([[[[10 * w0, 10 * (1 - w0)]]]]),
                               msg="context is weights @ V")


@pytest.mark.task("1.1")
def test_sdpa_mask_zeroes_padding():
    mask = torch.tensor([True, True, False])[None, None, None, :]  # (1, 1, 1, Lk): key 2 is padding
    _, weights = ScaledDotProductAttention(head_dim=4).eval()(
        torch.randn(1, 2, 4, 4), torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4), mask)
    assert torch.all(weights[..., 2] == 0), "a masked key (mask False/0) must get exactly 0 weight"


@pytest.mark.task("1.2")
def test_mha_shapes():
    mha = MultiHeadAttention(dim=12, num_heads=3)
    out, weights = mha(torch.randn(2, 5, 12))
    assert out.shape == (2, 5, 12), "output should be (B, L, dim)"
    assert weights.shape == (2, 3, 5, 5), "weights should be (B, num_heads, L, L)"


@pytest.mark.task("1.2")
def test_mha_has_the_four_projections():
    mha = MultiHeadAttention(dim=12, num_heads=3)
    for name in ("w_q", "w_k", "w_v", "w_o"):
        layer = getattr(mha, name, None)
        assert isinstance(layer, torch.nn.Linear), f"MultiHeadAttention needs an nn.Linear called {name}"
        assert layer.weight.shape == (12, 12), f"{name} maps dim -> dim"


@pytest.mark.task("1.2")
def test_mha_cross_attention_shapes():
    mha = MultiHeadAttention(dim=8, num_heads=2)
    out, weights = mha(torch.randn(2, 6, 8), torch.randn(2, 9, 8), torch.randn(2, 9, 8))
    assert out.shape == (2, 6, 8), "output has one row per query"
    assert weights.shape == (2, 2, 6, 9), "weights are (B, H, Lq, Lk)"
