"""Week 4 hidden tests: windows, relative positions, shifted windows and a Swin model against timm.

Every call to the student's code goes through the ``student`` sandbox; references are timm 1.0.31's
own functions and modules (``timm.models.swin_transformer``) with the same weights, re-randomised so
that small bugs (a LayerNorm eps, a transposed bias) cannot hide under timm's near-zero init.

timm silently disables the shift (and the mask) when a side of the map is not larger than the
window, so every shifted case here uses maps larger than the window: (8, 4, 2), (14, 7, 3),
(12, 4, 2) as (side, window, shift), a non-square map and a non-square window. Maps are non-square
and batches have 2 images wherever a swapped axis or a mis-tiled mask could hide.
"""

import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vitgrade.hidden import assert_close, rand, randomise, state, tensor_meta

DRAW = random.SystemRandom()  # drawn by the judge for every grading


def timm_swin() -> SimpleNamespace:
    """timm's Swin module, imported on first use (the tests before the first parity test do not need it)."""
    from timm.models import swin_transformer as ts

    return ts






def timm_block(dim, resolution, heads, window, shift, seed=0, mlp_ratio=2.0):
    torch.manual_seed(seed)
    ref = timm_swin().SwinTransformerBlock(dim=dim, input_resolution=resolution, num_heads=heads,
                                           window_size=window, shift_size=shift, mlp_ratio=mlp_ratio)
    init = dict(dim=dim, input_resolution=resolution, num_heads=heads, window_size=window, shift_size=shift,
                mlp_ratio=mlp_ratio)
    return randomise(ref, seed), init


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two labellings group the same positions together (the numbers themselves are free)."""
    a, b = a.reshape(-1), b.reshape(-1)
    return bool(np.array_equal(a[:, None] == a[None, :], b[:, None] == b[None, :]))


# ---------------------------------------------------------------- Task 4.1: windows
PARTITIONS = [((2, 8, 12, 3), 4), ((1, 14, 21, 2), 7), ((2, 6, 8, 3), (3, 4))]


@pytest.mark.task("4.1", points=2)
@pytest.mark.parametrize("shape,window", PARTITIONS, ids=lambda v: str(v))
def test_window_partition_matches_timm(student, shape, window):
    x = rand(*shape, seed=1)
    got = student.fn("swin.window_partition", x, window)
    ws = (window, window) if isinstance(window, int) else window
    assert_close(got, timm_swin().window_partition(x, ws),
                 f"window_partition of a {tuple(shape)} map into {ws} windows (image-major, raster order)")


@pytest.mark.task("4.1", points=2)
@pytest.mark.parametrize("shape,window", PARTITIONS, ids=lambda v: str(v))
def test_window_reverse_matches_timm(student, shape, window):
    b, h, w, c = shape
    ws = (window, window) if isinstance(window, int) else window
    windows = rand(b * (h // ws[0]) * (w // ws[1]), ws[0], ws[1], c, seed=2)
    got = student.fn("swin.window_reverse", windows, window, h, w)
    assert_close(got, timm_swin().window_reverse(windows, ws, h, w),
                 f"window_reverse of {tuple(windows.shape)} windows into {h}x{w} maps")


@pytest.mark.task("4.1", points=1)
def test_window_functions_reject_indivisible_maps(student):
    reason = student.raises(ValueError, "swin.window_partition", rand(1, 10, 8, 2), 4)
    if "10" not in reason:
        raise AssertionError(f"the error should name the map size that does not divide; it says: {reason}")
    student.raises(ValueError, "swin.window_partition", rand(1, 8, 10, 2), 4)
    student.raises(ValueError, "swin.window_reverse", rand(4, 4, 4, 2), 4, 8, 10)
    student.raises(ValueError, "swin.window_reverse", rand(5, 4, 4, 2), 4, 8, 8)  # 5 windows, 4 per map


# ---------------------------------------------------------------- Task 4.2: relative positions
@pytest.mark.task("4.2", points=2)
@pytest.mark.parametrize("window", [2, 3, 7, (3, 5), (4, 2)], ids=str)
def test_relative_position_index_matches_timm(student, window):
    ws = (window, window) if isinstance(window, int) else window
    got = student.fn("swin.relative_position_index", window)
    expected = timm_swin().get_relative_position_index(*ws)
    if got.dtype.kind not in "iu":
        raise AssertionError(f"relative_position_index must be an integer tensor (it indexes a table); got {got.dtype}")
    assert_close(got, expected, f"relative_position_index({window}) vs timm's get_relative_position_index", atol=0)


@pytest.mark.task("4.2", points=1)
def test_relative_position_bias_lookup(student):
    ws, heads = (3, 4), 5
    table = rand((2 * ws[0] - 1) * (2 * ws[1] - 1), heads, seed=3)
    index = timm_swin().get_relative_position_index(*ws)
    got = student.fn("swin.relative_position_bias", table, index)
    n = ws[0] * ws[1]
    expected = table[index.reshape(-1)].reshape(n, n, heads).permute(2, 0, 1)
    assert_close(got, expected, "relative_position_bias: (nH, N, N) with bias[h, i, j] = table[index[i, j], h]",
                 atol=0)


# ---------------------------------------------------------------- Task 4.3: window attention
def timm_window_attention(dim, heads, window, seed):
    torch.manual_seed(seed)
    ref = randomise(timm_swin().WindowAttention(dim, num_heads=heads, window_size=window), seed)
    return ref, dict(dim=dim, num_heads=heads, window_size=window)


@pytest.mark.task("4.3", points=2)
@pytest.mark.parametrize("window,heads", [(4, 3), ((3, 5), 2)], ids=["4x4-3heads", "3x5-2heads"])
def test_window_attention_matches_timm(student, window, heads):
    ref, init = timm_window_attention(12, heads, window, seed=4)
    n = ref.window_area
    x = rand(6, n, 12, seed=5)
    got = student.module("swin.WindowAttention", init=init, state=state(ref))(x)
    with torch.no_grad():
        expected = ref(x)
    assert_close(got, expected, f"WindowAttention ({window} window, {heads} heads, timm's weights) without a mask")


@pytest.mark.task("4.3", points=2)
def test_window_attention_with_mask_matches_timm(student):
    """Two images of 4 windows each: image b's window w must get mask[w]."""
    ref, init = timm_window_attention(12, 3, 4, seed=6)
    mask = timm_swin().SwinTransformerBlock(12, (8, 8), 3, window_size=4, shift_size=2).attn_mask  # (4, 16, 16)
    x = rand(2 * 4, 16, 12, seed=7)
    got = student.module("swin.WindowAttention", init=init, state=state(ref))(x, mask)
    with torch.no_grad():
        expected = ref(x, mask)
    assert_close(got, expected, "WindowAttention with the (nW=4, 16, 16) shift mask on 2 images x 4 windows")


@pytest.mark.task("4.3", points=1)
def test_window_attention_goes_through_week1(student):
    """The worker makes every Week 1 ScaledDotProductAttention inside the student's module scale its
    context by a factor drawn here; through Week 1's module the output is then timm's with the output
    projection's weight scaled by that factor, computed here. Attention computed any other way does not
    show the factor."""
    ref, init = timm_window_attention(8, 2, 2, seed=8)
    factor = round(DRAW.uniform(2.0, 5.0), 3)
    x = rand(3, 4, 8, seed=9)
    got = student.probe("window_attention_through_core", init=init, state=state(ref), x=x, factor=factor)
    with torch.no_grad():
        ref.proj.weight.mul_(factor)
        expected = ref(x)
    assert_close(got, expected, f"WindowAttention with Week 1's ScaledDotProductAttention made to scale its "
                 f"context by {factor}: the attention must go through vitcourse.attention.ScaledDotProductAttention "
                 "(a submodule), with the relative position bias and the mask as its additive `bias`")


def dropout_block(dim, resolution, heads, window, shift, silence):
    """A block with dropout 0.5 whose attention branch (silence="attn": proj zeroed) or MLP branch
    (silence="mlp": fc2 zeroed) adds exactly zero: what randomness is left comes from the other one."""
    ref, init = timm_block(dim, resolution, heads, window, shift, seed=21)
    with torch.no_grad():
        for layer in ((ref.attn.proj,) if silence == "attn" else (ref.mlp.fc2,)):
            layer.weight.zero_()
            layer.bias.zero_()
    return ref, dict(init, dropout=0.5)


@pytest.mark.task("4.5", points=1)
@pytest.mark.parametrize("branch", ["attention", "mlp"])
def test_block_dropout_in_training_only(student, branch):
    """dropout acts on the attention weights and in the MLP in training mode, and nowhere in eval mode."""
    ref, init = dropout_block(12, (8, 8), 3, 4, 2, silence="mlp" if branch == "attention" else "attn")
    x = rand(2, 8, 8, 12, seed=22)
    block = student.module("swin.SwinTransformerBlock", init=init, state=state(ref))
    with torch.no_grad():
        expected = ref.eval()(x)
    assert_close(block(x), expected, "SwinTransformerBlock(dropout=0.5) in eval mode vs timm: no dropout")
    train = student.module("swin.SwinTransformerBlock", init=init, state=state(ref), train=True)
    first, second = train.run(x, seed=DRAW.randrange(1, 2**31)), train.run(x, seed=DRAW.randrange(1, 2**31))
    if np.allclose(first["outputs"][0], expected, atol=1e-6) or np.allclose(first["outputs"][0],
                                                                             second["outputs"][0], atol=1e-6):
        where = "on the attention weights (WindowAttention passes it to Week 1's module)" if branch == "attention" \
            else "in the MLP (Week 2's Mlp(dim, hidden, dropout))"
        raise AssertionError(f"SwinTransformerBlock(dropout=0.5) in training mode, with only its {branch} branch "
                             f"active, gave the eval-mode output: the dropout must act {where}")


@pytest.mark.task("4.5", points=1)
def test_block_buffers_follow_the_module(student):
    """The relative position index and the shift mask are buffers: block.to(device) moves them with the
    parameters. Checked on PyTorch's meta device (what a move to a GPU does, without a GPU)."""
    res = student.probe("block_on_meta", init=dict(dim=8, input_resolution=(8, 8), num_heads=2, window_size=4,
                                                   shift_size=2), shape=[2, 8, 8, 8])
    if res["error"] or res["device"] != "meta" or res["shape"] != [2, 8, 8, 8]:
        raise AssertionError(f"a shifted SwinTransformerBlock moved with .to('meta') and run on a meta input "
                             f"gave {res['error'] or (res['device'], res['shape'])}: register attn_mask and "
                             "relative_position_index as buffers (register_buffer(..., persistent=False)), not "
                             "plain attributes, so they move with the module")


@pytest.mark.task("4.3", points=1)
def test_window_attention_rejects_indivisible_heads(student):
    student.raises(ValueError, "swin.WindowAttention", dim=10, num_heads=3, window_size=4)


# ---------------------------------------------------------------- Task 4.4: the shift mask
SHIFTS = [((8, 8), 4, 2), ((14, 14), 7, 3), ((12, 12), 4, 2), ((8, 12), 4, 2), ((12, 8), (4, 2), (2, 1))]


@pytest.mark.task("4.4", points=3)
@pytest.mark.parametrize("resolution,window,shift", SHIFTS, ids=str)
def test_shift_mask_matches_timm(student, resolution, window, shift):
    got = student.fn("swin.shifted_window_mask", resolution, window, shift)
    expected = timm_swin().SwinTransformerBlock(4, resolution, 1, window_size=window, shift_size=shift).attn_mask
    if got is None or getattr(got, "shape", None) != tuple(expected.shape):
        raise AssertionError(f"shifted_window_mask{(resolution, window, shift)} should have shape "
                             f"(nW, N, N) = {tuple(expected.shape)}; got {getattr(got, 'shape', got)}")
    if not np.array_equal(got < 0, expected.numpy() < 0):
        wrong = int(np.sum((got < 0) != (expected.numpy() < 0)))
        raise AssertionError(f"shifted_window_mask{(resolution, window, shift)}: {wrong} (query, key) pairs are "
                             "masked where timm's SwinTransformerBlock.attn_mask is not, or the other way round")
    assert_close(got, expected, "mask values: 0 within a region, -100 across regions", atol=0, rtol=0)
    dtype = tensor_meta(got)["dtype"]
    if dtype != "torch.float32":
        raise AssertionError(f"shifted_window_mask returns a float32 mask (it is added to float scores); got {dtype}")


@pytest.mark.task("4.4", points=1)
@pytest.mark.parametrize("resolution,window,shift", [((8, 12), 4, 2), ((14, 7), 7, 3)], ids=str)
def test_shift_region_labels(student, resolution, window, shift):
    labels = student.fn("swin.shift_region_labels", resolution, window, shift)
    h, w = resolution
    rows = np.digitize(np.arange(h), [h - window, h - shift])  # band 0, 1 or 2 (band 0 empty when h == ws)
    cols = np.digitize(np.arange(w), [w - window, w - shift])
    expected = rows[:, None] * 3 + cols[None, :]
    if getattr(labels, "shape", None) != (h, w) or not same_partition(np.asarray(labels), expected):
        raise AssertionError(f"shift_region_labels{(resolution, window, shift)}: the regions should be the bands "
                             f"[0, H-ws), [H-ws, H-s), [H-s, H) of rows times those of columns; got\n{labels}")


@pytest.mark.task("4.4", points=1)
def test_shift_mask_rejects_bad_arguments(student):
    student.raises(ValueError, "swin.shifted_window_mask", (8, 8), 4, 4)
    student.raises(ValueError, "swin.shifted_window_mask", (8, 8), 4, -1)
    student.raises(ValueError, "swin.shift_region_labels", (10, 8), 4, 2)


# ---------------------------------------------------------------- Task 4.5: the block
BLOCKS = [((8, 8), 4, 0), ((8, 8), 4, 2), ((14, 14), 7, 3), ((8, 12), 4, 2), ((12, 8), (4, 2), (2, 1))]


@pytest.mark.task("4.5", points=4)
@pytest.mark.parametrize("resolution,window,shift", BLOCKS, ids=str)
def test_block_matches_timm(student, resolution, window, shift):
    """W-MSA and SW-MSA with copied weights: a missing or reversed roll, a missing mask or a mask
    tiled in the wrong order all change the output."""
    ref, init = timm_block(12, resolution, 3, window, shift, seed=10)
    x = rand(2, *resolution, 12, seed=11)
    got = student.module("swin.SwinTransformerBlock", init=init, state=state(ref))(x)
    with torch.no_grad():
        expected = ref(x)
    assert_close(got, expected, f"SwinTransformerBlock{(resolution, window, shift)} vs timm (copied weights)")


@pytest.mark.task("4.5", points=2)
@pytest.mark.parametrize("resolution,window,shift,used", [((4, 4), 7, 3, ((4, 4), (0, 0))),
                                                          ((4, 8), 4, 2, ((4, 4), (0, 2)))], ids=str)
def test_block_on_small_maps_follows_timm(student, resolution, window, shift, used):
    """A side no larger than the window: the window shrinks to it and that axis is not shifted."""
    ref, init = timm_block(8, resolution, 2, window, shift, seed=12)
    res = student.probe("block_settings", init=init)
    if (res["window_size"], res["shift_size"]) != used:
        raise AssertionError(f"SwinTransformerBlock(input_resolution={resolution}, window_size={window}, "
                             f"shift_size={shift}) should use window {used[0]} and shift {used[1]} (as timm); "
                             f"it uses window {res['window_size']} and shift {res['shift_size']}")
    if used[1] == (0, 0) and res["attn_mask"] is not None:
        raise AssertionError("a block that does not shift has attn_mask None")
    x = rand(2, *resolution, 8, seed=13)
    got = student.module("swin.SwinTransformerBlock", init=init, state=state(ref))(x)
    with torch.no_grad():
        expected = ref(x)
    assert_close(got, expected, f"SwinTransformerBlock{(resolution, window, shift)} vs timm")


@pytest.mark.task("4.5", points=1)
def test_block_layernorm_eps_on_small_activations(student):
    """Activations of scale 0.01: Swin's LayerNorm eps 1e-5 (PyTorch's default) vs ViT's 1e-6 shows."""
    ref, init = timm_block(12, (8, 8), 3, 4, 2, seed=14)
    with torch.no_grad():
        for layer in (ref.attn.proj, ref.mlp.fc2):
            layer.weight.mul_(0.02)
            layer.bias.mul_(0.02)
    x = 0.01 * rand(2, 8, 8, 12, seed=15)
    got = student.module("swin.SwinTransformerBlock", init=init, state=state(ref))(x)
    with torch.no_grad():
        expected = ref(x)
    assert_close(got, expected, "SwinTransformerBlock on small activations (LayerNorm eps 1e-5)", atol=1e-7, rtol=1e-4)


@pytest.mark.task("4.5", points=1)
def test_block_checks_its_resolution(student):
    student.raises(ValueError, "swin.SwinTransformerBlock", dim=8, input_resolution=(12, 12), num_heads=2,
                   window_size=8)
    block = student.module("swin.SwinTransformerBlock", init=dict(dim=8, input_resolution=(8, 8), num_heads=2,
                                                                   window_size=4))
    student.raises(ValueError, block, rand(1, 8, 12, 8))


# ---------------------------------------------------------------- Task 4.6: patch merging
@pytest.mark.task("4.6", points=2)
@pytest.mark.parametrize("out_dim", [None, 10])
def test_patch_merging_matches_timm(student, out_dim):
    torch.manual_seed(16)
    ref = randomise(timm_swin().PatchMerging(6, out_dim=out_dim), seed=16)
    x = rand(2, 8, 12, 6, seed=17)
    got = student.module("swin.PatchMerging", init=dict(dim=6, out_dim=out_dim), state=state(ref))(x)
    with torch.no_grad():
        expected = ref(x)
    assert_close(got, expected, f"PatchMerging(6, out_dim={out_dim}) on (2, 8, 12, 6) vs timm "
                 "(neighbours concatenated as (0,0), (1,0), (0,1), (1,1))")


@pytest.mark.task("4.6", points=1)
def test_patch_merging_rejects_odd_maps(student):
    merge = student.module("swin.PatchMerging", init=dict(dim=4))
    reason = student.raises(ValueError, merge, rand(1, 7, 8, 4))
    if "7" not in reason:
        raise AssertionError(f"the error should name the odd size (7x8); it says: {reason}")
    student.raises(ValueError, merge, rand(1, 8, 5, 4))


# ---------------------------------------------------------------- Task 4.7: the model
@pytest.mark.task("4.7", points=1)
def test_stage_without_downsampling_keeps_its_width(student):
    student.raises(ValueError, "swin.SwinTransformerStage", dim=8, out_dim=16, input_resolution=(8, 8), depth=2,
                   downsample=False, num_heads=2, window_size=4)



MODELS = [
    dict(img_size=32, patch_size=2, embed_dim=24, depths=(2, 2, 2), num_heads=(2, 4, 8), window_size=4,
         num_classes=10, mlp_ratio=2.0),
    dict(img_size=(32, 64), patch_size=4, embed_dim=16, depths=(2, 2), num_heads=(2, 4), window_size=4,
         num_classes=7, in_chans=2),
]


@pytest.mark.task("4.7", points=4)
@pytest.mark.parametrize("cfg", MODELS, ids=["32x32-3stages", "32x64-2stages"])
def test_swin_matches_timm(student, cfg):
    """Strict loading of timm's state dict, then the logits; the 3-stage model's last stage is
    4x4 = one window (no shift), the 2-stage one is non-square."""
    torch.manual_seed(18)
    ref = randomise(timm_swin().SwinTransformer(**cfg), seed=18)
    h, w = (cfg["img_size"],) * 2 if isinstance(cfg["img_size"], int) else cfg["img_size"]
    images = rand(2, cfg.get("in_chans", 3), h, w, seed=19)
    got = student.module("swin.SwinTransformer", init=cfg, state=state(ref))(images)
    with torch.no_grad():
        expected = ref(images)
    assert_close(got, expected, f"logits of SwinTransformer({cfg}) with timm's weights", atol=1e-5)


@pytest.mark.task("4.7", points=1)
def test_swin_forward_features_shape(student):
    cfg = MODELS[0]
    out = student.module("swin.SwinTransformer", init=cfg).run(rand(2, 3, 32, 32, seed=20),
                                                                method="forward_features")["outputs"][0]
    if getattr(out, "shape", None) != (2, 4, 4, 96):
        raise AssertionError("forward_features of a 3-stage model (P=2, D=24) on 32x32 images is the normalised "
                             f"last map (B, 4, 4, 96); got {getattr(out, 'shape', out)}")
