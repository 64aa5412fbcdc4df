"""Week 1 hidden tests: attention against torch's own implementations.

Every call to the student's code goes through the ``student`` sandbox and comes back as plain
arrays; references are computed here with torch. Shapes use all-different sizes (B=2, nH=3,
Lq=5, Lk=7, Dh=4) so a swapped axis cannot hide.
"""

import ast
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vitgrade.hidden import assert_close, rand, source

SDPA = "attention.ScaledDotProductAttention"
MHA = "attention.MultiHeadAttention"
B, nH, LQ, LK, DH = 2, 3, 5, 7, 4


def key_mask(valid_lengths, lk):
    """(B, 1, 1, Lk) boolean mask, True for the first valid_lengths[b] keys."""
    return (torch.arange(lk)[None, :] < torch.tensor(valid_lengths)[:, None])[:, None, None, :]


def reference_weights(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1)


def sdpa(student, q, k, v, mask=None, dropout=0.0, train=False, calls=1, seed=0, bias=None):
    module = student.module(SDPA, init={"head_dim": q.shape[-1], "dropout": dropout}, train=train)
    kwargs = {} if bias is None else {"bias": bias}
    outs = module.run(q, k, v, mask, calls=calls, seed=seed, **kwargs)["outputs"]
    for call in outs:
        if not isinstance(call, tuple) or len(call) != 2:
            raise AssertionError("ScaledDotProductAttention.forward must return (context, weights)")
    return outs if calls > 1 else outs[0]


def mha_state_from_torch(ref: nn.MultiheadAttention) -> dict:
    """Map nn.MultiheadAttention's packed weights onto the w_q/w_k/w_v/w_o contract."""
    d = ref.embed_dim
    state = {"w_o.weight": ref.out_proj.weight.detach(), "w_o.bias": ref.out_proj.bias.detach()}
    for i, name in enumerate(("w_q", "w_k", "w_v")):  # in_proj rows: [W^Q; W^K; W^V]
        state[f"{name}.weight"] = ref.in_proj_weight.detach()[i * d:(i + 1) * d]
        state[f"{name}.bias"] = ref.in_proj_bias.detach()[i * d:(i + 1) * d]
    return state


def torch_mha(dim, heads, seed=0):
    torch.manual_seed(seed)
    ref = nn.MultiheadAttention(dim, heads, batch_first=True).eval()
    with torch.no_grad():  # non-zero biases, so a missing bias shows
        ref.in_proj_bias.normal_(0, 0.5)
        ref.out_proj.bias.normal_(0, 0.5)
    return ref


def mha(student, ref, query, key=None, value=None, mask=None, grad_weights=None):
    args = [query] if key is None else [query, key, value]
    kwargs = {} if mask is None else {"mask": mask}
    module = student.module(MHA, init={"dim": ref.embed_dim, "num_heads": ref.num_heads},
                            state=mha_state_from_torch(ref))
    return module.run(*args, grad_weights=grad_weights, **kwargs)


# ---------------------------------------------------------------- Task 1.1: scaled dot-product
@pytest.mark.task("1.1", points=2)
@pytest.mark.parametrize("with_bias", [False, True], ids=["plain", "additive_bias"])
def test_sdpa_matches_torch(student, with_bias):
    """With ``bias``: torch's float attn_mask is the same additive term (Swin's relative bias, Week 4)."""
    q, k, v = rand(B, nH, LQ, DH, seed=1), rand(B, nH, LK, DH, seed=2), rand(B, nH, LK, DH, seed=3)
    bias = 2 * rand(1, nH, LQ, LK, seed=40) if with_bias else None  # broadcast over the batch
    context, weights = sdpa(student, q, k, v, bias=bias)
    scores = q @ k.transpose(-2, -1) / math.sqrt(DH) + (0 if bias is None else bias)
    what = "with an additive (1, nH, Lq, Lk) bias on the scaled scores" if with_bias else "without mask or bias"
    assert_close(weights, scores.softmax(-1), f"attention weights {what}")
    assert_close(context, F.scaled_dot_product_attention(q, k, v, attn_mask=bias),
                 f"context vs F.scaled_dot_product_attention {what}")


@pytest.mark.task("1.1", points=1)
def test_sdpa_cross_attention_value_width(student):
    q, k, v = rand(1, 2, 6, 8, seed=4), rand(1, 2, 9, 8, seed=5), rand(1, 2, 9, 3, seed=6)
    context, weights = sdpa(student, q, k, v)
    assert_close(context, F.scaled_dot_product_attention(q, k, v),
                 "cross-attention context (Lq=6, Lk=9, Dv=3)")
    assert_close(weights.sum(-1), np.ones((1, 2, 6)), "rows of the weights (sum over keys)")


@pytest.mark.task("1.1", points=1)
def test_sdpa_scale_is_one_over_sqrt_head_dim(student):
    q, k, v = 3 * rand(1, 1, 4, 16, seed=7), 3 * rand(1, 1, 4, 16, seed=8), rand(1, 1, 4, 16, seed=9)
    _, weights = sdpa(student, q, k, v)
    assert_close(weights, reference_weights(q, k), "weights with Dh=16 (check the 1/sqrt(Dh) scale)")


@pytest.mark.task("1.1", points=2)
@pytest.mark.parametrize("dtype", ["bool", "float"])
def test_sdpa_padding_mask(student, dtype):
    q, k, v = rand(B, nH, LQ, DH, seed=10), rand(B, nH, LK, DH, seed=11), rand(B, nH, LK, DH, seed=12)
    mask = key_mask([4, 6], LK)
    sent = mask if dtype == "bool" else mask.float()
    context, weights = sdpa(student, q, k, v, sent)
    masked = ~mask.expand(B, nH, LQ, LK).numpy()
    if np.any(weights[masked] != 0):
        raise AssertionError(f"masked keys ({dtype} mask, 0 = padding) must get exactly 0 weight; "
                             f"largest was {np.abs(weights[masked]).max():.3g}")
    assert_close(weights, reference_weights(q, k, mask), f"weights with a {dtype} padding mask")
    assert_close(context, F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
                 f"context with a {dtype} padding mask")


@pytest.mark.task("1.1", points=1)
def test_sdpa_mask_broadcasts(student):
    """Masks other than (B, 1, 1, Lk): a (1, 1, Lq, Lk) causal mask and one (B, nH, Lq, Lk) mask
    per head and query broadcast against the scores like the padding mask does."""
    q, k, v = rand(B, nH, LQ, DH, seed=40), rand(B, nH, LK, DH, seed=41), rand(B, nH, LK, DH, seed=42)
    causal = torch.ones(LQ, LK, dtype=torch.bool).tril(diagonal=LK - LQ)[None, None]  # (1, 1, Lq, Lk)
    per_head = rand(B, nH, LQ, LK, seed=43) > 0  # (B, nH, Lq, Lk)
    per_head[..., 0] = True  # every query keeps at least one key
    for name, mask in (("causal (1, 1, Lq, Lk)", causal), ("per-head (B, nH, Lq, Lk)", per_head)):
        context, weights = sdpa(student, q, k, v, mask)
        assert_close(weights, reference_weights(q, k, mask), f"weights with a {name} mask")
        assert_close(context, F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
                     f"context with a {name} mask")


@pytest.mark.task("1.1", points=1)
def test_sdpa_fully_masked_row_is_uniform(student):
    """A sequence whose keys are all padding: finite, uniform weights (what -1e9 is for), not NaN."""
    q, k, v = rand(B, nH, LQ, DH, seed=44), rand(B, nH, LK, DH, seed=45), rand(B, nH, LK, DH, seed=46)
    mask = key_mask([0, 5], LK)  # sequence 0 has no valid key at all
    context, weights = sdpa(student, q, k, v, mask)
    assert_close(weights[0], np.full((nH, LQ, LK), 1 / LK),
                 "weights of queries whose keys are all masked (expected uniform 1/Lk)")
    assert_close(context[0], v[0].mean(-2, keepdim=True).expand(nH, LQ, DH),
                 "context of queries whose keys are all masked (expected the mean of the values)")
    assert_close(weights[1], reference_weights(q, k, mask)[1], "weights of the sequence with 5 valid keys")


@pytest.mark.task("1.1", points=1)
def test_sdpa_masked_keys_have_no_influence(student):
    q, k, v = rand(B, nH, LQ, DH, seed=13), rand(B, nH, LK, DH, seed=14), rand(B, nH, LK, DH, seed=15)
    mask = key_mask([3, 5], LK)
    k2, v2 = k.clone(), v.clone()
    k2[0, :, 3:], v2[0, :, 3:] = 100.0, -100.0  # garbage in padded positions
    k2[1, :, 5:], v2[1, :, 5:] = -50.0, 50.0
    c1, _ = sdpa(student, q, k, v, mask)
    c2, _ = sdpa(student, q, k2, v2, mask)
    assert_close(c2, c1, "context must not change when only padded keys/values change")


@pytest.mark.task("1.1", points=2)
def test_sdpa_dropout_after_softmax(student):
    # With V = identity the context *is* the effective weight matrix.
    p, lq, lk = 0.5, 6, 8
    q, k = rand(4, 2, lq, 5, seed=16), rand(4, 2, lk, 5, seed=17)
    v = torch.eye(lk).expand(4, 2, lk, lk).contiguous()
    context, weights = sdpa(student, q, k, v, dropout=p, train=True, seed=3)
    clean = reference_weights(q, k).numpy()
    assert_close(context, weights, "in training, context must equal (returned weights) @ V")
    dropped = weights == 0
    if not (0.3 < dropped.mean() < 0.7):
        raise AssertionError(f"with dropout p=0.5 in training mode, {dropped.mean():.0%} of the "
                             "weights were zeroed; expected about half")
    assert_close(weights[~dropped], clean[~dropped] / (1 - p),
                 "surviving weights must be softmax weights / (1 - p): dropout goes after the softmax")


@pytest.mark.task("1.1", points=1)
def test_sdpa_eval_mode_is_deterministic(student):
    q, k, v = rand(B, nH, LQ, DH, seed=18), rand(B, nH, LK, DH, seed=19), rand(B, nH, LK, DH, seed=20)
    (c1, w1), (c2, w2) = sdpa(student, q, k, v, dropout=0.5, train=False, calls=2)
    assert_close(w1, reference_weights(q, k), "eval-mode weights with dropout=0.5 (no dropout in eval)")
    assert_close(c2, c1, "two eval-mode calls must agree")


# ---------------------------------------------------------------- Task 1.2: multi-head attention
@pytest.mark.task("1.2", points=3)
def test_mha_self_attention_matches_torch(student):
    ref = torch_mha(12, 3, seed=0)
    x = rand(B, LQ, 12, seed=21)
    out, weights = mha(student, ref, x, x, x)["outputs"][0]
    ref_out, ref_w = ref(x, x, x, average_attn_weights=False)
    assert_close(weights, ref_w.detach(), "per-head weights vs nn.MultiheadAttention", atol=1e-5)
    assert_close(out, ref_out.detach(), "output vs nn.MultiheadAttention (copied weights)")


@pytest.mark.task("1.2", points=2)
def test_mha_cross_attention_matches_torch(student):
    ref = torch_mha(8, 2, seed=1)
    q, k, v = rand(2, 6, 8, seed=22), rand(2, 9, 8, seed=23), rand(2, 9, 8, seed=24)
    out, weights = mha(student, ref, q, k, v)["outputs"][0]
    ref_out, ref_w = ref(q, k, v, average_attn_weights=False)
    assert_close(weights, ref_w.detach(), "cross-attention weights (Lq=6, Lk=9)")
    assert_close(out, ref_out.detach(), "cross-attention output vs nn.MultiheadAttention")


@pytest.mark.task("1.2", points=1)
def test_mha_key_and_value_default_to_query(student):
    ref = torch_mha(12, 4, seed=2)
    x = rand(2, 5, 12, seed=25)
    alone = mha(student, ref, x)["outputs"][0]
    ref_out, _ = ref(x, x, x)
    assert_close(alone[0], ref_out.detach(), "forward(x) must be self-attention, forward(x, x, x)")


@pytest.mark.task("1.2", points=2)
def test_mha_key_padding_mask_matches_torch(student):
    ref = torch_mha(12, 3, seed=3)
    x = rand(B, LK, 12, seed=26)
    mask = key_mask([4, 7], LK)
    out, weights = mha(student, ref, x, x, x, mask=mask)["outputs"][0]
    ref_out, ref_w = ref(x, x, x, key_padding_mask=~mask[:, 0, 0], average_attn_weights=False)
    assert_close(weights, ref_w.detach(), "weights with a (B, 1, 1, Lk) padding mask")
    assert_close(out, ref_out.detach(), "output with a padding mask (True = attend)")


@pytest.mark.task("1.2", points=1)
def test_mha_padding_invariance(student):
    """Appending padded tokens (masked out) must not change the real tokens' outputs."""
    ref = torch_mha(12, 3, seed=4)
    x = rand(1, 5, 12, seed=27)
    padded = torch.cat([x, 7 * rand(1, 3, 12, seed=28)], dim=1)
    short = mha(student, ref, x, x, x)["outputs"][0][0]
    long = mha(student, ref, x, padded, padded, mask=key_mask([5], 8))["outputs"][0][0]
    assert_close(long, short, "outputs with 3 extra masked keys vs without them")


@pytest.mark.task("1.2", points=1)
def test_mha_heads_are_independent(student):
    """Changing head 1's query projection changes head 1's weights and no other head's: every head's
    weights, before and after, equal nn.MultiheadAttention's with the same weights."""
    ref = torch_mha(12, 3, seed=5)
    x = rand(2, 5, 12, seed=29)
    for when in ("before", "after"):
        if when == "after":
            with torch.no_grad():
                ref.in_proj_weight[4:8] += rand(4, 12, seed=30)  # rows of W_q that belong to head 1
        weights = mha(student, ref, x)["outputs"][0][1]
        expected = ref(x, x, x, average_attn_weights=False)[1].detach()
        for head in range(3):
            assert_close(weights[:, head], expected[:, head],
                         f"head {head}'s weights {when} head 1's query rows changed (head h must use "
                         "features h*Dh ... (h+1)*Dh-1 only)")


@pytest.mark.task("1.2", points=1)
def test_mha_gradients_reach_every_parameter(student):
    ref = torch_mha(12, 3, seed=6)
    x = rand(2, 5, 12, seed=31)
    upstream = rand(2, 5, 12, seed=32)
    res = mha(student, ref, x, x, x, grad_weights=[upstream, None])
    x_t = x.clone().requires_grad_(True)  # the probe differentiates w.r.t. the query input only
    ref_out, _ = ref(x_t, x, x)
    (ref_out * upstream).sum().backward()
    grads = res["grads"]
    for name in ("w_q.weight", "w_k.weight", "w_v.weight", "w_o.weight"):
        if grads[name].size == 0 or not np.any(grads[name]):
            raise AssertionError(f"no gradient reaches {name}")
    assert_close(grads["w_o.weight"], ref.out_proj.weight.grad, "gradient of w_o.weight", atol=1e-4)
    assert_close(res["input_grads"][0], x_t.grad, "gradient with respect to the query input", atol=1e-4)


@pytest.mark.task("1.2", points=1)
def test_mha_passes_dropout_to_the_attention(student):
    """MultiHeadAttention(dropout=0.5): about half the weights dropped in training, none in eval."""
    ref = torch_mha(12, 3, seed=8)
    x = rand(4, 6, 12, seed=34)
    init = {"dim": 12, "num_heads": 3, "dropout": 0.5}
    state = mha_state_from_torch(ref)
    _, weights = student.module(MHA, init=init, state=state, train=True).run(x, seed=5)["outputs"][0]
    dropped = float(np.mean(weights == 0))
    if not 0.3 < dropped < 0.7:
        raise AssertionError(f"MultiHeadAttention(dropout=0.5) in training mode zeroed {dropped:.0%} of the "
                             "attention weights; expected about half (does the dropout reach its attention?)")
    _, eval_weights = student.module(MHA, init=init, state=state)(x)
    assert_close(eval_weights, ref(x, x, x, average_attn_weights=False)[1].detach(),
                 "eval-mode weights of MultiHeadAttention(dropout=0.5) (no dropout in eval)")


@pytest.mark.task("1.2", points=1)
def test_mha_rejects_indivisible_width(student):
    student.raises(ValueError, MHA, dim=10, num_heads=3)


@pytest.mark.task("1.2", points=2)
def test_vectorised_no_loops_no_library_attention(student):
    """No Python loop in the attention code, no torch attention inside it, and it scales."""
    text, tree = source("attention.py")
    if tree is None:
        raise AssertionError("attention.py does not parse")
    banned_calls = {"scaled_dot_product_attention", "MultiheadAttention", "multi_head_attention_forward"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name in ("ScaledDotProductAttention", "MultiHeadAttention"):
            for sub in ast.walk(node):
                if isinstance(sub, (ast.For, ast.While, ast.AsyncFor, ast.ListComp,
                                    ast.GeneratorExp, ast.SetComp, ast.DictComp)):
                    raise AssertionError(f"{node.name} has a Python loop (line {sub.lineno}): "
                                         "vectorise it with einsum/matmul")
        if isinstance(node, (ast.Name, ast.Attribute)):
            name = node.id if isinstance(node, ast.Name) else node.attr
            if name in banned_calls:
                raise AssertionError(f"attention.py uses torch's {name} (line {node.lineno}): "
                                     "write the attention yourself")
    ref = torch_mha(32, 4, seed=7)
    x = rand(2, 128, 32, seed=33)
    out = mha(student, ref, x)["outputs"][0][0]
    assert_close(out, ref(x, x, x)[0].detach(), "output for a 128-token sequence", atol=1e-4)


# ---------------------------------------------------------------- Task 1.3: the reverse task
@pytest.mark.task("1.3", points=4)
def test_reverse_sequence_task_learns_anti_diagonal(student):
    """The seed's success criterion, with positions in queries and keys only; every head anti-diagonal.

    The worker trains the student's module and hands back its trained parameters, positions and
    predictions. Everything graded is computed here: nn.MultiheadAttention with those parameters
    must give the student's predictions (so the module really computes attention with them), and
    the reversal error and the anti-diagonal weights are measured on that recomputation. A module
    that returns its values flipped, with weights made up to look anti-diagonal, has parameters
    that do not reverse.
    """
    eval_x = rand(256, 10, 64, seed=34)
    res = student.probe("reverse_task", timeout=120, seed=0, eval_x=eval_x)
    state, pos = res["state"], torch.as_tensor(res["pos"])
    wanted = {f"{n}.{p}" for n in ("w_q", "w_k", "w_v", "w_o") for p in ("weight", "bias")}
    if set(state) != wanted or pos.shape != (10, 64):
        raise AssertionError(f"trained parameters {sorted(state)} and positions {tuple(pos.shape)}: expected "
                             f"{sorted(wanted)} (the Task 1.2 contract) and (10, 64)")
    ref = nn.MultiheadAttention(64, 4, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([torch.as_tensor(state[f"w_{n}.weight"]) for n in "qkv"]))
        ref.in_proj_bias.copy_(torch.cat([torch.as_tensor(state[f"w_{n}.bias"]) for n in "qkv"]))
        ref.out_proj.weight.copy_(torch.as_tensor(state["w_o.weight"]))
        ref.out_proj.bias.copy_(torch.as_tensor(state["w_o.bias"]))
        qk = eval_x + pos
        output, weights = ref(qk, qk, eval_x, average_attn_weights=False)
    assert_close(res["weights"], weights, "the trained module's weights vs attention recomputed from its "
                 "trained parameters", atol=1e-4)
    assert_close(res["output"], output, "the trained module's predictions vs attention recomputed from its "
                 "trained parameters", atol=1e-4)
    output, weights = output.numpy(), weights.numpy()
    mse = float(np.mean((output - eval_x.flip(1).numpy()) ** 2))
    if not mse < 0.01:
        raise AssertionError(f"eval MSE after 500 steps is {mse:.3f}; with the positions in the queries and "
                             "keys only (as here), a correct MultiHeadAttention reaches < 0.01, so the "
                             "module itself is wrong: the failing Task 1.1/1.2 tests say where")
    # Each head carries only its own Dh features of the copied token, so the output is exact only
    # when every head reads key L-1-i.
    for head in range(weights.shape[1]):
        mean = weights[:, head].mean(0)  # (10, 10), batch mean
        hits = int(np.sum(mean.argmax(-1) == np.arange(9, -1, -1)))
        mass = float(np.mean(mean[np.arange(10), np.arange(9, -1, -1)]))
        if hits < 9 or mass <= 0.9:
            raise AssertionError(f"head {head} is not anti-diagonal: {hits}/10 rows peak at 9-i, "
                                 f"mean anti-diagonal weight {mass:.2f} (need >= 9 and > 0.9, for every head)")
