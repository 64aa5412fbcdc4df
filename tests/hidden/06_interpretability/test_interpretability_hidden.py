"""Week 6 hidden tests: extraction, rollout, gradient-weighted attention, head statistics, ablation, faithfulness.

Every reference is computed here, in the grader's process: attention weights are recomputed from each
block's qkv weights of a timm ViT (timm 1.0.31, run with its fused attention, so the weights never
come from the path the student hooks), rollout and the gradient-weighted rule from their formulas,
the gradients with autograd on the grader's own model, the statistics from their definitions, the
ablations with the grader's own hook, the deletion curves with the grader's own copy of the
one-patch model. What comes back from the student's process is only ever output to compare.

Weights and images are drawn from a seed chosen when the suite starts (``SEED``), so no output can be
written down in advance; sizes are non-square so that a transposed grid shows.
"""

import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vitgrade.hidden import assert_close, rand, randomise, state, tensor_meta

SEED = random.SystemRandom().randrange(1, 10**6)

# A non-square ViT: 16 x 24 images, patch 4 -> a 4 x 6 grid, T = 25 tokens; 3 blocks of 3 heads.
CONFIG = dict(img_size=(16, 24), patch_size=4, embed_dim=24, depth=3, num_heads=3, mlp_ratio=2.0, num_classes=5)
GRID = (4, 6)


def timm_vit(seed: int, config: dict = CONFIG):
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(seed)
    return randomise(VisionTransformer(**config), seed=seed)


def images_for(seed: int, batch: int = 3, config: dict = CONFIG) -> torch.Tensor:
    height, width = config["img_size"]
    return rand(batch, 3, height, width, seed=seed)


def reference_attention(model, images: torch.Tensor) -> torch.Tensor:
    """(L, B, nH, T, T): softmax(q k^T / sqrt(Dh)) recomputed from every block's qkv weights and its input
    (the output of norm1, caught with a hook on the grader's own model, whose attention runs fused)."""
    inputs = []
    handles = [b.norm1.register_forward_hook(lambda m, a, out: inputs.append(out.detach())) for b in model.blocks]
    try:
        with torch.no_grad():
            model(images)
    finally:
        for h in handles:
            h.remove()
    per_block = []
    with torch.no_grad():
        for block, tokens in zip(model.blocks, inputs):
            heads, width = block.attn.num_heads, block.attn.head_dim
            dim = heads * width
            weight, bias = block.attn.qkv.weight, block.attn.qkv.bias  # rows: [q | k | v]
            queries = F.linear(tokens, weight[:dim], bias[:dim]).unflatten(-1, (heads, width))  # (B, T, nH, Dh)
            keys = F.linear(tokens, weight[dim:2 * dim], bias[dim:2 * dim]).unflatten(-1, (heads, width))
            scores = torch.einsum("bqhd,bkhd->bhqk", queries, keys) / math.sqrt(width)
            per_block.append(scores.softmax(dim=-1))
    return torch.stack(per_block)


def stack(weights) -> np.ndarray:
    if not weights:
        raise AssertionError("nothing was recorded: recorder.weights is empty after a forward pass")
    return np.stack([np.asarray(w) for w in weights])


# ---------------------------------------------------------------- Task 6.1: extraction
def check_recording(facts: dict, model, images, what: str, fused_before: list) -> None:
    expected = reference_attention(model, images)
    with torch.no_grad():
        logits = model(images)
    got = stack(facts["weights"])
    assert_close(got, expected, f"{what}: the recorded weights (L, B, nH, T, T) vs softmax(q k^T / sqrt(Dh)) "
                 "recomputed from each block's qkv weights", atol=1e-5)
    assert_close(facts["logits_before"], logits, f"{what}: the model's logits before the recorder")
    assert_close(facts["logits_inside"], logits, f"{what}: the logits inside the with-block must be the model's "
                 "own (recording must not change what the model computes)", atol=1e-5)
    assert_close(facts["logits_after"], facts["logits_before"], f"{what}: the logits after the with-block",
                 atol=1e-6, rtol=0)
    if facts["hooks_after"] != facts["hooks_before"]:
        raise AssertionError(f"{what}: {facts['hooks_after'] - facts['hooks_before']} hook(s) left on the model "
                             "after the with-block: remove every handle in __exit__")
    if facts["flags_after"] != fused_before:
        raise AssertionError(f"{what}: fused_attn flags after the with-block are {facts['flags_after']}, were "
                             f"{fused_before} before: put each back as it was")


@pytest.mark.task("6.1", points=3)
def test_course_vit_weights_equal_a_recomputation(student):
    model = timm_vit(SEED)
    images = images_for(SEED + 1)
    facts = student.probe("record", kind="course", config=CONFIG, state=state(model), images=images)
    check_recording(facts, model, images, "the course's Week 2 VisionTransformer (4 x 6 grid, 3 blocks of 3 heads)",
                    [None, None, None])


@pytest.mark.task("6.1", points=3)
def test_timm_vit_with_fused_attention_gives_its_weights(student):
    """timm computes attention with F.scaled_dot_product_attention while fused_attn is True: the weights
    never exist unless the recorder makes them exist, and the flag must come back True."""
    model = timm_vit(SEED + 2)
    images = images_for(SEED + 3)
    facts = student.probe("record", kind="timm", config=CONFIG, state=state(model), images=images,
                          fused=[True, True, True])
    if facts["count"] == 0:
        raise AssertionError("a timm ViT with fused attention (fused_attn=True): nothing was recorded; the "
                             "weights only exist on the explicit path (switch fused_attn off while recording)")
    check_recording(facts, model, images, "a timm VisionTransformer with fused_attn=True", [True, True, True])


@pytest.mark.task("6.1", points=1)
def test_fused_flags_come_back_as_they_were(student):
    model = timm_vit(SEED + 4)
    images = images_for(SEED + 5, batch=2)
    flags = [True, False, True]
    facts = student.probe("record", kind="timm", config=CONFIG, state=state(model), images=images, fused=flags)
    if facts["flags_after"] != flags:
        raise AssertionError(f"blocks started with fused_attn {flags}; after the with-block they are "
                             f"{facts['flags_after']}: restore each block's own value, not a constant")
    assert_close(stack(facts["weights"]), reference_attention(model, images), "weights with mixed fused flags")


@pytest.mark.task("6.1", points=1)
def test_model_is_restored_when_the_body_raises(student):
    model = timm_vit(SEED + 6)
    images = images_for(SEED + 7, batch=2)
    facts = student.probe("record", kind="timm", config=CONFIG, state=state(model), images=images,
                          fused=[True, True, True], raise_inside=True)
    if "on purpose" not in facts["error"]:
        raise AssertionError("an exception raised inside the with-block must propagate (do not swallow it: "
                             "__exit__ returns None/False)")
    if facts["hooks_after"] != facts["hooks_before"] or facts["flags_after"] != [True, True, True]:
        raise AssertionError(f"after an exception inside the with-block: {facts['hooks_after']} hooks (were "
                             f"{facts['hooks_before']}), fused flags {facts['flags_after']} (were all True); "
                             "clean up in __exit__ (or a finally:) so it happens on errors too")


@pytest.mark.task("6.1", points=1)
def test_each_forward_pass_starts_afresh(student):
    model = timm_vit(SEED + 8)
    images = images_for(SEED + 9, batch=3)
    facts = student.probe("record", kind="course", config=CONFIG, state=state(model), images=images, passes=2)
    if facts["count"] != CONFIG["depth"]:
        raise AssertionError(f"two forward passes inside the with-block: recorder.weights must hold the "
                             f"{CONFIG['depth']} blocks of the last pass only, got {facts['count']} tensors")
    assert_close(stack(facts["weights"]), reference_attention(model, images[:2]),
                 "after a pass on 3 images and one on 2: the second pass's weights")


@pytest.mark.task("6.1", points=1)
def test_detach_decides_whether_the_graph_is_kept(student):
    model = timm_vit(SEED + 10)
    images = images_for(SEED + 11, batch=2)
    kept = student.probe("record", kind="timm", config=CONFIG, state=state(model), images=images, detach=False)
    dropped = student.probe("record", kind="timm", config=CONFIG, state=state(model), images=images, detach=True)
    if not kept["weights"] or not all(tensor_meta(w)["grad_fn"] for w in kept["weights"]):
        raise AssertionError("AttentionRecorder(model, detach=False) must keep the weights in the autograd graph "
                             "(Task 6.3 differentiates through them); they came back without a graph")
    if any(tensor_meta(w)["requires_grad"] for w in dropped["weights"]):
        raise AssertionError("AttentionRecorder(model) (detach=True) must store detached weights (no graph)")


@pytest.mark.task("6.1", points=1)
def test_unknown_model_is_refused_clearly(student):
    facts = student.probe("record_unknown_model")
    if facts["raised"] != "TypeError":
        raise AssertionError(f"entering the recorder on an nn.Sequential (no .blocks) must raise TypeError; got "
                             f"{facts['raised'] or 'nothing'}")
    if facts["hooks_after"]:
        raise AssertionError("a refused model must be left without hooks")


# ---------------------------------------------------------------- Task 6.2: rollout
def random_attention(layers: int, batch: int, heads: int, tokens: int, seed: int, sharpness: float = 2.0):
    return (sharpness * rand(layers, batch, heads, tokens, tokens, seed=seed)).softmax(dim=-1)


def reference_rollout(attention: torch.Tensor, fusion: str, residual: float, discard: float) -> torch.Tensor:
    attention = attention.double()
    t = attention.shape[-1]
    result = torch.eye(t, dtype=torch.float64)
    for block in attention:
        fused = {"mean": block.mean(1), "max": block.amax(1), "min": block.amin(1)}[fusion]  # (B, T, T)
        if discard > 0:
            k = int(discard * t * (t - 1))
            rest = fused[:, :, 1:].reshape(len(fused), -1).clone()
            rest.scatter_(1, rest.topk(k, dim=-1, largest=False).indices, 0.0)
            fused = torch.cat([fused[:, :, :1], rest.reshape(len(fused), t, t - 1)], dim=-1)
        a_hat = (1 - residual) * fused + residual * torch.eye(t, dtype=torch.float64)
        a_hat = a_hat / a_hat.sum(-1, keepdim=True)
        result = a_hat @ result
    return result


CASES = [(f, r, 0.0) for f in ("mean", "max", "min") for r in (0.5, 0.2, 0.0)] + [("mean", 0.5, 0.9), ("max", 0.3, 0.5)]


@pytest.mark.task("6.2", points=4)
def test_rollout_matches_the_formula(student):
    attention = random_attention(4, 2, 3, 7, seed=SEED + 20)
    got = student.probe("rollouts", attention=attention, cases=CASES)
    for (fusion, residual, discard), out in zip(CASES, got):
        assert_close(out, reference_rollout(attention, fusion, residual, discard),
                     f"rollout of 4 blocks, head_fusion={fusion!r}, residual={residual}, discard_ratio={discard}: "
                     "per block fuse, (1 - r) A + r I, rows renormalised, R = A_hat_4 ... A_hat_1", atol=1e-5)


@pytest.mark.task("6.2", points=1)
def test_rollout_invariants(student):
    attention = random_attention(3, 2, 2, 6, seed=SEED + 21)
    identity = torch.eye(6).expand(3, 2, 2, 6, 6).contiguous()
    got = student.probe("rollouts", attention=identity, cases=[("mean", 0.5, 0.0), ("min", 0.0, 0.0)])
    for out in got:
        assert_close(out, torch.eye(6).expand(2, 6, 6), "rollout of identity attention is the identity")
    one = student.fn("rollout.attention_rollout", attention[:1], residual=0.3)
    assert_close(one, 0.7 * attention[0].mean(1) + 0.3 * torch.eye(6), "one block, mean fusion, r = 0.3: "
                 "(1 - r) A + r I (its rows already sum to 1)")
    maxed = np.asarray(student.fn("rollout.attention_rollout", attention, head_fusion="max"))
    assert_close(maxed.sum(-1), np.ones((2, 6)), "max fusion: every row of the rollout sums to 1 (renormalise)")


@pytest.mark.task("6.2", points=1)
def test_rollout_multiplies_blocks_in_order(student):
    attention = random_attention(3, 1, 2, 5, seed=SEED + 22, sharpness=3.0)
    forward = student.fn("rollout.attention_rollout", attention)
    expected = reference_rollout(attention, "mean", 0.5, 0.0)
    reversed_order = reference_rollout(attention.flip(0), "mean", 0.5, 0.0)
    if np.abs(np.asarray(forward) - reversed_order.numpy()).max() < 1e-6:
        raise AssertionError("the rollout equals the product in the wrong order: R = A_hat_L @ ... @ A_hat_1, the "
                             "first block rightmost (R <- A_hat_l @ R)")
    assert_close(forward, expected, "rollout: R = A_hat_3 @ A_hat_2 @ A_hat_1")


@pytest.mark.task("6.2", points=1)
def test_discard_never_touches_the_cls_column(student):
    """The CLS column holds the smallest weights: a discard that ignores the rule would zero it first."""
    attention = random_attention(2, 2, 2, 6, seed=SEED + 23)
    attention[..., 0] = 1e-4 * (1 + rand(2, 2, 2, 6, seed=SEED + 24).abs())
    attention = attention / attention.sum(-1, keepdim=True)
    got = student.fn("rollout.discard_lowest", attention[0].mean(1), 0.5)
    fused = attention[0].mean(1)
    assert_close(np.asarray(got)[:, :, 0], fused[:, :, 0], "discard_lowest(ratio 0.5): column 0 (CLS) is kept as is")
    zeros = int((np.asarray(got)[:, :, 1:] == 0).sum(axis=(1, 2)).min())
    if zeros != int(0.5 * 6 * 5):
        raise AssertionError(f"discard_lowest with ratio 0.5 on 6 tokens must zero int(0.5 * 6 * 5) = 15 entries of "
                             f"columns 1..5 per image; found {zeros}")
    out = student.fn("rollout.attention_rollout", attention, discard_ratio=0.5)
    assert_close(out, reference_rollout(attention, "mean", 0.5, 0.5), "rollout with discard_ratio 0.5")


@pytest.mark.task("6.2", points=1)
def test_cls_map_on_a_non_square_grid(student):
    matrix = rand(2, 2 + 12, 2 + 12, seed=SEED + 25)
    got = student.fn("rollout.cls_relevance", matrix, (3, 4), num_prefix_tokens=2)
    assert_close(got, matrix[:, 0, 2:].reshape(2, 3, 4), "cls_relevance on a 3 x 4 grid with 2 prefix tokens: row 0, "
                 "columns 2.., rows of the grid first")


@pytest.mark.task("6.2", points=1)
def test_rollout_rejects_bad_arguments(student):
    attention = random_attention(2, 1, 2, 4, seed=1)
    student.raises(ValueError, "rollout.attention_rollout", attention, head_fusion="median")
    student.raises(ValueError, "rollout.attention_rollout", attention, residual=1.5)
    student.raises(ValueError, "rollout.attention_rollout", attention, discard_ratio=1.0)


# ---------------------------------------------------------------- Task 6.3: gradient-weighted attention
def reference_rule(attention: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    attention, gradient = attention.double(), gradient.double()
    t = attention.shape[-1]
    result = torch.eye(t, dtype=torch.float64).expand(attention.shape[1], t, t)
    for a, g in zip(attention, gradient):
        result = result + (g * a).clamp(min=0).mean(1) @ result
    return result


@pytest.mark.task("6.3", points=2)
def test_gradient_rule_matches_the_formula(student):
    attention = random_attention(3, 2, 4, 6, seed=SEED + 30)
    gradient = rand(3, 2, 4, 6, 6, seed=SEED + 31)  # both signs: the clamp matters
    got = student.fn("gradient_attention.gradient_weighted_rule", attention, gradient)
    assert_close(got, reference_rule(attention, gradient), "gradient_weighted_rule: R <- R + mean_h((dA * A)^+) @ R "
                 "from block 1 to block 3, R = I at the start", atol=1e-5)


def reference_gradient_relevance(model, images: torch.Tensor, target) -> torch.Tensor:
    """The rule on gradients from the grader's own autograd: fused attention off, attn_drop's output kept."""
    weights, handles = [], []
    for block in model.blocks:
        block.attn.fused_attn = False
        handles.append(block.attn.attn_drop.register_forward_hook(lambda m, a, out: weights.append(out)))
    try:
        logits = model(images)
    finally:
        for h in handles:
            h.remove()
        for block in model.blocks:
            block.attn.fused_attn = True
    classes = logits.argmax(-1) if target is None else torch.as_tensor(target).expand(len(images))
    grads = torch.autograd.grad(logits.gather(1, classes[:, None]).sum(), weights)
    return reference_rule(torch.stack([w.detach() for w in weights]), torch.stack(grads)).float()


@pytest.mark.task("6.3", points=3)
def test_gradient_weighted_attention_matches_autograd(student):
    """Graded with the course's recorder in place of yours, so a Task 6.1 bug is not paid for twice."""
    model = timm_vit(SEED + 32)
    images = images_for(SEED + 33, batch=3)
    targets = [None, 2, [4, 0, 1]]
    got = student.probe("gradient_relevance", config=CONFIG, state=state(model), images=images, targets=targets)
    names = ("target=None: each image's predicted class", "target=2: class 2 for every image",
             "target=tensor([4, 0, 1]): a class per image")
    for target, what, relevance in zip(targets, names, got["relevance"]):
        expected = reference_gradient_relevance(model, images, target)
        assert_close(relevance, expected, f"gradient-weighted relevance (B, T, T) for {what} vs the rule on "
                     "gradients from autograd", atol=1e-5, rtol=1e-4)
    with torch.no_grad():
        assert_close(got["logits"][0], model(images), "the logits returned next to the relevance")
    for what, value in (("relevance", got["relevance"][0]), ("logits", got["logits"][0])):
        if tensor_meta(value)["requires_grad"]:
            raise AssertionError(f"gradient_weighted_attention returns its {what} detached (no graph)")


@pytest.mark.task("6.3", points=1)
def test_gradient_weighted_attention_leaves_parameters_alone(student):
    model = timm_vit(SEED + 34)
    got = student.probe("gradient_relevance", config=CONFIG, state=state(model), images=images_for(SEED + 35, 2),
                        targets=[None])
    if got["params_with_grad"]:
        raise AssertionError(f"after gradient_weighted_attention {len(got['params_with_grad'])} parameters have a "
                             f".grad (e.g. {got['params_with_grad'][0]}): take torch.autograd.grad with respect to the "
                             "attention weights only, do not call backward()")


# ---------------------------------------------------------------- Task 6.4: statistics
def grid_distances(grid, patch_size) -> torch.Tensor:
    h, w = grid
    rows, cols = np.divmod(np.arange(h * w), w)
    d = np.sqrt((rows[:, None] - rows[None]) ** 2 + (cols[:, None] - cols[None]) ** 2)
    return torch.tensor(patch_size * d, dtype=torch.float64)


def with_prefix(patches: torch.Tensor, prefix: int, cls_share: float = 0.0) -> torch.Tensor:
    """(B, nH, N, N) patch-to-patch weights -> (B, nH, T, T): prefix rows uniform; each patch row gives
    ``cls_share`` to column 0 and (1 - cls_share) x its row to the patches."""
    b, heads, n, _ = patches.shape
    t = n + prefix
    out = torch.zeros(b, heads, t, t, dtype=torch.float64)
    out[:, :, :prefix] = 1.0 / t
    out[:, :, prefix:, prefix:] = (1 - cls_share) * patches
    out[:, :, prefix:, 0] = cls_share
    return out.float()


def statistic(student, name: str, attention, *args, **kwargs) -> np.ndarray:
    return np.asarray(student.fn(f"head_stats.{name}", attention, *args, **kwargs), dtype=np.float64)


@pytest.mark.task("6.4", points=2)
def test_hand_built_patterns(student):
    grid, p = (3, 5), 7
    n = 15
    eye = with_prefix(torch.eye(n, dtype=torch.float64).expand(2, 2, n, n), 1)
    uniform = torch.full((2, 2, n + 1, n + 1), 1.0 / (n + 1))
    for name, args, value, what in (
            ("mean_attention_distance", (grid, p), 0.0, "identity attention: distance 0"),
            ("attention_entropy", (), 0.0, "identity attention: entropy 0"),
            ("attention_sparsity", (), (n - 1) / n, "identity attention: Gini (N - 1) / N"),
            ("cls_attention", (), 0.0, "identity attention: no weight on CLS")):
        assert_close(statistic(student, name, eye, *args), np.full(2, value), what, atol=1e-5)
    assert_close(statistic(student, "attention_entropy", uniform), np.full(2, math.log(n)),
                 "uniform attention over CLS + 15 patches: entropy over the patch keys, renormalised, in nats = log 15",
                 atol=1e-5)
    assert_close(statistic(student, "attention_sparsity", uniform), np.zeros(2), "uniform attention: Gini 0", atol=1e-5)
    assert_close(statistic(student, "cls_attention", uniform), np.full(2, 1 / 16), "uniform: CLS gets 1/16",
                 atol=1e-6)


@pytest.mark.task("6.4", points=2)
def test_neighbour_pattern_distance_is_in_pixels(student):
    """Every patch reads only the patch to its right (the last column: to its left): one grid step, so
    the distance is exactly the patch size (7 pixels), whatever the grid."""
    grid, p = (3, 5), 7
    h, w = grid
    pattern = torch.zeros(15, 15, dtype=torch.float64)
    for i in range(15):
        r, c = divmod(i, w)
        pattern[i, r * w + (c + 1 if c + 1 < w else c - 1)] = 1.0
    attention = with_prefix(pattern.expand(1, 2, 15, 15), 1)
    assert_close(statistic(student, "mean_attention_distance", attention, grid, p), np.full(2, 7.0),
                 "every patch attends to a horizontal neighbour on a 3 x 5 grid of 7-pixel patches: distance 7 "
                 "pixels (grid distance times the patch size)", atol=1e-4)


@pytest.mark.task("6.4", points=3)
def test_statistics_match_their_definitions(student):
    """Random weights with 30 % on CLS and two prefix tokens: what is renormalised and what is not shows."""
    grid, p, prefix = (3, 4), 5, 2
    n = 12
    patches = (3 * rand(2, 3, n, n, seed=SEED + 40)).softmax(-1).double()
    attention = with_prefix(patches, prefix, cls_share=0.3)
    a = attention.double()[:, :, prefix:, prefix:]  # (B, nH, N, N)
    distance = (a * grid_distances(grid, p)).sum(-1).mean(dim=(0, 2))
    probs = a / a.sum(-1, keepdim=True)
    entropy = -(probs * probs.log()).sum(-1).mean(dim=(0, 2))
    cls = attention.double()[:, :, prefix:, 0].mean(dim=(0, 2))
    ordered = probs.sort(-1).values
    k = torch.arange(1, n + 1, dtype=torch.float64)
    gini = (1 - 2 * (ordered * (n - k + 0.5) / n).sum(-1)).mean(dim=(0, 2))
    kw = dict(num_prefix_tokens=prefix)
    assert_close(statistic(student, "mean_attention_distance", attention, grid, p, **kw), distance,
                 "mean attention distance: sum_j A[i, j] d(i, j) over patch keys, not renormalised, in pixels",
                 atol=1e-4)
    assert_close(statistic(student, "attention_entropy", attention, **kw), entropy,
                 "entropy in nats over the patch keys, renormalised", atol=1e-5)
    assert_close(statistic(student, "cls_attention", attention, **kw), cls, "the weight of patch queries on CLS",
                 atol=1e-6)
    assert_close(statistic(student, "attention_sparsity", attention, **kw), gini,
                 "the Gini coefficient over the patch keys", atol=1e-5)
    assert_close(student.fn("head_stats.patch_distances", grid, p), grid_distances(grid, p),
                 "patch_distances((3, 4), 5): pixels between patch centres, raster order", atol=1e-4)


# ---------------------------------------------------------------- Task 6.5: ablation
def reference_ablated(model, images: torch.Tensor, heads: list) -> torch.Tensor:
    handles = []
    for block_index in sorted({b for b, _ in heads}):
        attn = model.blocks[block_index].attn
        keep = torch.ones(attn.num_heads * attn.head_dim)
        for b, h in heads:
            if b == block_index:
                keep[h * attn.head_dim:(h + 1) * attn.head_dim] = 0
        handles.append(attn.proj.register_forward_pre_hook(lambda m, args, keep=keep: (args[0] * keep,)))
    try:
        with torch.no_grad():
            return model(images)
    finally:
        for h in handles:
            h.remove()


@pytest.mark.task("6.5", points=3)
def test_head_ablation_zeroes_the_heads_output(student):
    model = timm_vit(SEED + 50)
    images = images_for(SEED + 51, batch=2)
    for heads in ([[1, 2]], [[0, 0], [0, 2], [2, 1]]):
        got = student.probe("ablate", kind="timm", config=CONFIG, state=state(model), images=images, heads=heads)
        assert_close(got["ablated"], reference_ablated(model, images, heads),
                     f"logits with heads {heads} (block, head) ablated: features h*Dh..(h+1)*Dh-1 of proj's input "
                     "set to 0",
                     atol=1e-5)
        with torch.no_grad():
            assert_close(got["after"], model(images), "logits after the with-block: the model as before", atol=1e-6)
        if got["hooks_after"]:
            raise AssertionError("HeadAblation left a hook on the model")


def carrier_state(model, carrier: int) -> dict:
    """Every block passes information between tokens only through head ``carrier``: the other heads' proj
    columns are 0, so ablating one of them changes nothing at all."""
    weights = state(model)
    head_dim = CONFIG["embed_dim"] // CONFIG["num_heads"]
    for b in range(CONFIG["depth"]):
        w = weights[f"blocks.{b}.attn.proj.weight"]
        for h in range(CONFIG["num_heads"]):
            if h != carrier:
                w[:, h * head_dim:(h + 1) * head_dim] = 0
    return weights


@pytest.mark.task("6.5", points=3)
def test_head_importance_measures_and_ranks(student):
    from timm.models.vision_transformer import VisionTransformer

    weights = carrier_state(timm_vit(SEED + 52), carrier=1)
    model = VisionTransformer(**CONFIG).eval()
    model.load_state_dict(weights)
    images = images_for(SEED + 53, batch=12)
    with torch.no_grad():
        labels = model(images).argmax(-1)  # the intact model is right on every image
    got = student.probe("importance", kind="course", config=dict(CONFIG), state=weights, images=images,
                        labels=labels)
    result = got["result"]
    with torch.no_grad():
        loss = F.cross_entropy(model(images), labels)
    assert_close(result["loss"], loss, "the intact model's loss (mean cross-entropy)")
    assert_close(result["accuracy"], 1.0, "the intact model's accuracy on its own predictions")
    delta_loss = torch.zeros(3, 3)
    delta_acc = torch.zeros(3, 3)
    for b in range(3):
        for h in range(3):
            logits = reference_ablated(model, images, [(b, h)])
            delta_loss[b, h] = F.cross_entropy(logits, labels) - loss
            delta_acc[b, h] = (logits.argmax(-1) == labels).float().mean() - 1.0
    assert_close(result["delta_loss"], delta_loss, "delta_loss (L, nH): loss with head (l, h) ablated minus the "
                 "intact loss", atol=1e-4)
    assert_close(result["delta_accuracy"], delta_acc, "delta_accuracy (L, nH)", atol=1e-6)
    zero = np.abs(np.asarray(result["delta_loss"]))[:, [0, 2]].max()
    if zero > 1e-5:
        raise AssertionError(f"heads whose output weights are 0 contribute nothing: ablating them must change the loss "
                             f"by 0, got up to {zero:.3g}")
    if np.abs(np.asarray(result["delta_loss"])[:, 1]).min() < 1e-4:
        raise AssertionError("head 1 carries everything the tokens exchange in every block: ablating it must change "
                             "the loss")
    expected_ranking = sorted(((b, h) for b in range(3) for h in range(3)),
                              key=lambda p: (-float(delta_loss[p]), p))
    if [tuple(p) for p in result["ranking"]][:3] != expected_ranking[:3]:
        raise AssertionError(f"ranking: the heads whose removal raises the loss most come first; expected "
                             f"{expected_ranking[:3]} first, got {[tuple(p) for p in result['ranking']][:3]}")


@pytest.mark.task("6.5", points=1)
def test_head_importance_leaves_the_model_as_found(student):
    """A model handed over in training mode, with dropout: measured in eval mode, handed back in training mode."""
    config = dict(CONFIG, drop_rate=0.3, proj_drop_rate=0.3)
    model = timm_vit(SEED + 54)
    images = images_for(SEED + 55, batch=4)
    labels = torch.tensor([0, 1, 2, 3])
    got = student.probe("importance", kind="timm", config=config, state=state(model), images=images, labels=labels,
                        train=True)
    with torch.no_grad():
        loss = F.cross_entropy(model(images), labels)
    delta = [[float(F.cross_entropy(reference_ablated(model, images, [(b, h)]), labels) - loss) for h in range(3)]
             for b in range(3)]
    assert_close(got["result"]["delta_loss"], delta, "delta_loss of a model handed over in training mode (dropout "
                 "0.3): measure in eval mode", atol=1e-4)
    if not got["training_after"]:
        raise AssertionError("head_importance got a model in training mode and left it in eval mode: restore the "
                             "training flag it found")
    if got["hooks_after"]:
        raise AssertionError("head_importance left hooks on the model")
    for key, value in state(model).items():
        assert_close(got["state_after"][key], value, f"parameter {key} after head_importance", atol=0, rtol=0)


# ---------------------------------------------------------------- Task 6.6: faithfulness
def reference_delete(images: torch.Tensor, relevance: torch.Tensor, k: int, p: int, baseline) -> torch.Tensor:
    out = images.clone()
    if baseline == "mean":
        fill = images.mean(dim=(2, 3), keepdim=True)
    else:
        fill = torch.full_like(images[:, :, :1, :1], baseline)
    w = relevance.shape[2]
    for b in range(len(images)):
        order = sorted(range(relevance[b].numel()), key=lambda i: (-float(relevance[b].flatten()[i]), i))
        for index in order[:k]:
            r, c = divmod(index, w)
            out[b, :, r * p:(r + 1) * p, c * p:(c + 1) * p] = fill[b, :, :1, :1]
    return out


@pytest.mark.task("6.6", points=2)
@pytest.mark.parametrize("baseline", ["mean", 0.25])
def test_delete_patches_removes_the_most_relevant_first(student, baseline):
    images = rand(2, 3, 12, 16, seed=SEED + 60)  # a 3 x 4 grid of 4-pixel patches
    relevance = rand(2, 3, 4, seed=SEED + 61)
    relevance[1, 0, :2] = 5.0  # a tie at the top: raster order decides
    for k in (0, 5, 12):
        got = student.fn("faithfulness.delete_patches", images, relevance, k, 4, baseline=baseline)
        assert_close(got, reference_delete(images, relevance, k, 4, baseline),
                     f"delete_patches(k={k}, baseline={baseline!r}): the k most relevant patches (ties in raster "
                     "order) set to each image's own per-channel mean" if baseline == "mean" else
                     f"delete_patches(k={k}, baseline={baseline})")


def reference_curve(images, labels, relevance, p, row, col, steps, baseline) -> list:
    out = []
    for k in steps:
        deleted = reference_delete(images, relevance, k, p, baseline)
        patch = deleted[:, 0, row * p:(row + 1) * p, col * p:(col + 1) * p].mean(dim=(1, 2))
        prediction = (20.0 * (patch - 0.5) > 0).long()
        out.append(float((prediction == labels).float().mean()))
    return out


@pytest.mark.task("6.6", points=3)
def test_deletion_with_the_true_map_beats_a_random_map(student):
    """A model that looks at one patch (row 1, column 2 of a 3 x 4 grid): the map that points there makes
    the accuracy collapse at the first step; a random map removes it at a random step."""
    gen = torch.Generator().manual_seed(SEED + 62)
    n, p, row, col = 40, 4, 1, 2
    images = torch.rand(n, 3, 12, 16, generator=gen)
    bright = torch.arange(n) % 2 == 0
    images[bright, 0, row * p:(row + 1) * p, col * p:(col + 1) * p] = 0.9  # class 1: a bright patch
    images[~bright, 0, row * p:(row + 1) * p, col * p:(col + 1) * p] = 0.1
    labels = bright.long()
    true_map = torch.zeros(n, 3, 4)
    true_map[:, row, col] = 1.0
    random_map = torch.rand(n, 3, 4, generator=gen)
    steps = list(range(13))
    got = student.probe("deletion", images=images, labels=labels, maps=[true_map, random_map], patch_size=p,
                        row=row, col=col, steps=steps, baseline=0.5)
    areas = []
    for name, relevance, ks, accuracy in zip(("the true map", "a random map"), (true_map, random_map), got["ks"],
                                             got["accuracy"]):
        if list(np.asarray(ks)) != steps:
            raise AssertionError(f"deletion_curve must return the ks it was given; got {list(np.asarray(ks))}")
        dtypes = (tensor_meta(ks)["dtype"], tensor_meta(accuracy)["dtype"])
        if dtypes != ("torch.int64", "torch.float32"):
            raise AssertionError(f"deletion_curve returns ks as int64 and the accuracy as float32; got {dtypes}")
        expected = reference_curve(images, labels, relevance, p, row, col, steps, 0.5)
        assert_close(accuracy, expected, f"deletion curve of {name} (accuracy after k = 0..12 patches removed)")
        areas.append(np.trapezoid(expected, np.asarray(steps) / 12))
    if not areas[0] < areas[1]:
        raise AssertionError(f"the true map's deletion area {areas[0]:.3f} must be below the random map's "
                             f"{areas[1]:.3f}")


@pytest.mark.task("6.6", points=1)
def test_deletion_area(student):
    ks = [0, 2, 4, 8, 16]
    accuracy = [1.0, 0.8, 0.5, 0.25, 0.2]
    got = float(np.asarray(student.fn("faithfulness.deletion_auc", ks, accuracy, 16)))
    expected = float(np.trapezoid(accuracy, np.asarray(ks) / 16))
    assert_close(got, expected, "deletion_auc on steps 0, 2, 4, 8, 16 of 16 patches: the trapezoid rule over k / N")
    student.raises(ValueError, "faithfulness.deletion_auc", [0, 2, 4], [1.0, 0.5, 0.2], 16)


@pytest.mark.task("6.6", points=2)
def test_pointing_game_and_mass_inside(student):
    fraction = torch.tensor([[[0.0, 0.5, 1.0], [0.2, 0.49, 0.0]]]).repeat(4, 1, 1)  # (4, 2, 3)
    relevance = torch.tensor([
        [[0.1, 0.9, 0.0], [0.0, 0.0, 0.0]],  # the top is a patch exactly half object: inside (>= 0.5)
        [[0.0, 0.0, 0.0], [0.7, 0.1, 0.2]],  # on a patch only 20 % object: outside
        [[0.3, 0.3, 0.3], [0.3, 0.3, 0.3]],  # all tied: the first (0 % object) counts: a miss
        [[0.0, 0.0, 0.1], [0.0, 0.9, 0.0]],  # on a patch 49 % object: a miss
    ])
    hits = np.asarray(student.fn("faithfulness.pointing_game", relevance, fraction))
    if hits.tolist() != [True, False, False, False]:
        raise AssertionError(f"pointing game (object patch: at least 50 % object, first maximum on a tie): expected "
                             f"[True, False, False, False], got {hits.tolist()}")
    mass = student.fn("faithfulness.mass_inside", relevance, fraction)
    inside = (fraction >= 0.5).float()
    assert_close(mass, (relevance * inside).sum((1, 2)) / relevance.sum((1, 2)),
                 "mass_inside: the share of the map on patches at least 50 % object")
    student.raises(ValueError, "faithfulness.mass_inside", relevance - 0.5, fraction)
