"""Week 2 hidden tests: patches, positions and a ViT against timm and the formulas.

Every call to the student's code goes through the ``student`` sandbox and comes back as plain
arrays; references are computed here, with timm 1.0.31 where timm has the operation (the whole
ViT, position resampling) and from the written formula otherwise. Images are non-square and
channel counts differ from 3 where that can expose a swapped axis.
"""

import ast
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vitgrade.hidden import assert_close, rand, randomise, source, state, tensor_meta

VIT = "vit.VisionTransformer"
SMALL = dict(embed_dim=48, depth=2, num_heads=3, mlp_ratio=2.0, num_classes=10)


def timm_lib() -> SimpleNamespace:
    """timm, imported on first use: it costs seconds, and the tests before the first parity test
    (and a submission that fails one of them, under ``-x``) do not need it."""
    import timm.layers
    from timm.models import vision_transformer

    return SimpleNamespace(resample=timm.layers.resample_abs_pos_embed, ViT=vision_transformer.VisionTransformer,
                           Block=vision_transformer.Block)


def reference_patchify(x: torch.Tensor, p: int) -> np.ndarray:
    """Raster order over the grid, (p1, p2, c) inside a patch: written as the definition."""
    x = x.numpy()
    b, c, h, w = x.shape
    rows = []
    for r in range(h // p):
        for col in range(w // p):
            patch = x[:, :, r * p:(r + 1) * p, col * p:(col + 1) * p]  # (B, C, P, P)
            rows.append(patch.transpose(0, 2, 3, 1).reshape(b, -1))  # (B, P*P*C), pixel-major
    return np.stack(rows, axis=1)  # (B, N, P*P*C)




def timm_vit(img_size=32, patch_size=4, seed=0, **overrides):
    cfg = dict(SMALL, **overrides)
    torch.manual_seed(seed)
    model = timm_lib().ViT(img_size=img_size, patch_size=patch_size, qkv_bias=True, class_token=True,
                    global_pool="token", **cfg)
    return randomise(model, seed), dict(img_size=img_size, patch_size=patch_size, **cfg)




def student_vit(student, init, model_state, images):
    return student.module(VIT, init=init, state=model_state)(images)


# ---------------------------------------------------------------- Task 2.1: patches
@pytest.mark.task("2.1", points=2)
@pytest.mark.parametrize("shape,p", [((2, 3, 8, 12), 4), ((1, 2, 32, 32), 8), ((2, 3, 32, 48), 16)])
def test_patchify_raster_order(student, shape, p):
    x = rand(*shape, seed=1)
    patches = student.fn("patches.patchify", x, p)
    assert_close(patches, reference_patchify(x, p),
                 f"patchify of a {tuple(shape)} batch with P={p} (raster order, (p1, p2, c) inside a patch)")


@pytest.mark.task("2.1", points=1)
def test_patchify_each_pixel_lands_once(student):
    """Pixel values 0..n-1: every patch entry is a distinct pixel, found where the order says."""
    x = torch.arange(2 * 3 * 8 * 12, dtype=torch.float32).reshape(2, 3, 8, 12)
    patches = student.fn("patches.patchify", x, 4)
    if sorted(patches.ravel().tolist()) != list(range(x.numel())):
        raise AssertionError("patchify must move every pixel exactly once (no pixel lost or repeated)")
    # patch 4 = grid row 1, column 1; entry (p1=2, p2=3, c=1) -> pixel (c=1, y=4+2, x=4+3)
    got, want = patches[0, 4, (2 * 4 + 3) * 3 + 1], x[0, 1, 6, 7]
    if got != want:
        raise AssertionError("patch 4 (row 1, column 1 of a 2x3 grid), entry (p1=2, p2=3, c=1) should be "
                             f"pixel (c=1, y=6, x=7) = {float(want):g}; got {float(got):g}")


@pytest.mark.task("2.1", points=2)
@pytest.mark.parametrize("shape,p", [((2, 3, 8, 12), 4), ((1, 2, 16, 32), 8)])
def test_unpatchify_inverts_patchify(student, shape, p):
    x = rand(*shape, seed=2)
    images = student.fn("patches.unpatchify", torch.from_numpy(reference_patchify(x, p)), p,
                     tuple(shape[-2:]))
    assert_close(images, x, f"unpatchify(reference patches of {tuple(shape)}, P={p}) must give back the images")


@pytest.mark.task("2.1", points=1)
def test_patchify_rejects_indivisible_sizes(student):
    reason = student.raises(ValueError, "patches.patchify", rand(1, 3, 30, 32), 4)
    student.raises(ValueError, "patches.patchify", rand(1, 3, 32, 30), 4)
    if "4" not in reason or ("30" not in reason):
        raise AssertionError(f"the error should name the image size and the patch size; it says: {reason}")


@pytest.mark.task("2.1", points=1)
def test_unpatchify_rejects_patches_that_do_not_tile_the_image(student):
    """Six 4x4x3 patches tile an 8x12 image; five do not, nor do patches 50 numbers wide."""
    student.raises(ValueError, "patches.unpatchify", rand(1, 5, 48), 4, (8, 12))
    student.raises(ValueError, "patches.unpatchify", rand(1, 6, 50), 4, (8, 12))


# ---------------------------------------------------------------- Task 2.2: patch embedding
@pytest.mark.task("2.2", points=1)
def test_conv_weight_to_linear_order(student):
    w = rand(5, 2, 3, 3, seed=3)  # (D, C, P, P)
    lin = student.fn("patches.conv_weight_to_linear", w)
    assert_close(lin, w.permute(0, 2, 3, 1).reshape(5, -1),
                 "conv_weight_to_linear of a (5, 2, 3, 3) kernel: row d flattened in (p1, p2, c) order")


@pytest.mark.task("2.2", points=3)
@pytest.mark.parametrize("shape,p,d", [((2, 3, 32, 32), 4, 16), ((2, 3, 32, 32), 8, 16),
                                       ((2, 3, 32, 32), 16, 16), ((1, 2, 16, 24), 8, 7)])
def test_patch_embedding_equals_conv2d(student, shape, p, d):
    c = shape[1]
    w, b = rand(d, c, p, p, seed=4), rand(d, seed=5)
    x = rand(*shape, seed=6)
    tokens = student.module("patches.PatchEmbedding", init={"patch_size": p, "in_chans": c, "embed_dim": d},
                            state={"proj.weight": w, "proj.bias": b})(x)
    ref = F.conv2d(x, w, b, stride=p).flatten(2).transpose(1, 2)  # (B, N, D), raster order
    assert_close(tokens, ref, f"PatchEmbedding(P={p}) on {tuple(shape)} vs Conv2d(kernel=stride={p}) "
                 "with the same weights", atol=1e-5)


@pytest.mark.task("2.2", points=1)
def test_patch_embedding_forward_is_linear_on_patches():
    """The rule of Task 2.2, read from the source: forward is patchify + a linear map, and never
    runs the convolution (self.proj(...), conv2d) that stores the weights."""
    _, tree = source("patches.py")
    if tree is None:
        raise AssertionError("patches.py does not parse")
    forward = next((f for c in ast.walk(tree) if isinstance(c, ast.ClassDef) and c.name == "PatchEmbedding"
                    for f in c.body if isinstance(f, ast.FunctionDef) and f.name == "forward"), None)
    if forward is None:
        raise AssertionError("PatchEmbedding has no forward method")
    names = set()
    for node in ast.walk(forward):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            names.add(name)
            runs_proj = (isinstance(func, ast.Attribute) and func.attr in ("proj", "forward", "_conv_forward")
                         and "proj" in ast.unparse(func))
            if runs_proj or name in ("conv2d", "_conv_forward"):
                raise AssertionError(f"PatchEmbedding.forward runs the convolution ({ast.unparse(func)}, line "
                                     f"{node.lineno}): compute it as patchify + F.linear with conv_weight_to_linear")
    if "patchify" not in names:
        raise AssertionError("PatchEmbedding.forward must cut the images with patchify")


# ---------------------------------------------------------------- Task 2.3: positions
def reference_sincos_1d(length, dim):
    pos = np.arange(length, dtype=np.float64)[:, None]
    out = np.zeros((length, dim))
    for i in range(dim // 2):
        omega = 10000.0 ** (-2 * i / dim)
        out[:, 2 * i] = np.sin(pos[:, 0] * omega)
        out[:, 2 * i + 1] = np.cos(pos[:, 0] * omega)
    return out


@pytest.mark.task("2.3", points=1)
@pytest.mark.parametrize("length,dim", [(10, 16), (65, 48)])
def test_sincos_1d_formula(student, length, dim):
    table = student.fn("positions.sincos_1d", length, dim)
    assert_close(table, reference_sincos_1d(length, dim),
                 f"sincos_1d({length}, {dim}): PE[p, 2i] = sin(p w_i), PE[p, 2i+1] = cos(p w_i), "
                 "w_i = 10000^(-2i/D)", atol=1e-5)


@pytest.mark.task("2.3", points=2)
def test_sincos_2d_formula(student):
    h, w, dim = 3, 5, 16
    table = student.fn("positions.sincos_2d", h, w, dim)
    rows, cols = reference_sincos_1d(h, dim // 2), reference_sincos_1d(w, dim // 2)
    ref = np.stack([np.concatenate([rows[r], cols[c]]) for r in range(h) for c in range(w)])
    assert_close(table, ref, "sincos_2d(3, 5, 16): token r*w + c = [row table of r | column table of c]",
                 atol=1e-5)


@pytest.mark.task("2.3", points=1)
def test_sincos_tables_are_float32(student):
    for target, args in (("positions.sincos_1d", (6, 8)), ("positions.sincos_2d", (2, 3, 8))):
        table = student.fn(target, *args)
        if table.dtype != np.float32:
            raise AssertionError(f"{target}{args} returned {table.dtype}; it must return float32 (compute in "
                                 "float64 if you like, then convert): a float64 table would turn a float32 "
                                 "model's activations into float64")


@pytest.mark.task("2.3", points=1)
def test_sincos_rejects_widths_without_pairs(student):
    student.raises(ValueError, "positions.sincos_1d", 4, 7)
    student.raises(ValueError, "positions.sincos_2d", 2, 3, 6)


@pytest.mark.task("2.3", points=1)
def test_resize_pos_embed_needs_old_grid_for_a_non_square_table(student):
    """8 grid rows (a 2x4 grid) are not a square: without old_grid there is no way to lay them out."""
    student.raises(ValueError, "positions.resize_pos_embed", rand(1, 1 + 8, 12, seed=21), (4, 4))


# ---------------------------------------------------------------- Task 2.4: the ViT
@pytest.mark.task("2.4", points=1)
def test_mlp_uses_exact_gelu(student):
    x = torch.linspace(-4, 4, 40).reshape(1, 5, 8)
    eye = torch.eye(8)
    out = student.module("vit.Mlp", init=dict(dim=8, hidden_dim=8),
                         state={"fc1.weight": eye, "fc1.bias": torch.zeros(8), "fc2.weight": eye,
                                "fc2.bias": torch.zeros(8)})(x)
    assert_close(out, F.gelu(x), "Mlp with identity weights must compute the exact (erf) GELU "
                 "(the tanh approximation differs by up to 4.7e-4)", atol=1e-6)


@pytest.mark.task("2.4", points=1)
def test_vit_without_positions_ignores_patch_order(student):
    """pos_embed='none': shuffling the patches of an image cannot change the CLS logits."""
    image = rand(1, 3, 32, 32, seed=17)
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(3))
    tiles = image.reshape(1, 3, 4, 8, 4, 8).permute(0, 2, 4, 1, 3, 5).reshape(16, 3, 8, 8)[perm]
    shuffled = tiles.reshape(1, 4, 4, 3, 8, 8).permute(0, 3, 1, 4, 2, 5).reshape(1, 3, 32, 32)
    for kind in ("none", "learn"):
        init = dict(img_size=32, patch_size=8, pos_embed=kind, **SMALL)
        logits = student.module(VIT, init=init)(torch.cat([image, shuffled]))
        moved = float(np.abs(logits[1] - logits[0]).max())
        if kind == "none":
            assert_close(logits[1], logits[0], "without positions, logits of an image and of its shuffled patches")
        elif moved < 1e-6:
            raise AssertionError("with learned positions, shuffling the patches must change the logits; "
                                 "they did not move (are the positions added?)")


@pytest.mark.task("2.4", points=1)
def test_attention_rejects_indivisible_heads(student):
    student.raises(ValueError, "vit.Attention", dim=10, num_heads=3)


@pytest.mark.task("2.4", points=2)
def test_vit_fixed_position_tables(student):
    for kind in ("sincos1d", "sincos2d"):
        init = dict(img_size=(16, 24), patch_size=4, pos_embed=kind, **SMALL)
        res = student.probe("position_table", init=init)
        grid = (reference_sincos_1d(24, 48) if kind == "sincos1d" else np.stack([
            np.concatenate([r, c]) for r in reference_sincos_1d(4, 24) for c in reference_sincos_1d(6, 24)]))
        ref = np.concatenate([np.zeros((1, 48)), grid])[None]
        assert_close(res["table"], ref, f"VisionTransformer(pos_embed='{kind}').pos_embed: "
                     "a zero row for CLS, then the table of the 4x6 grid", atol=1e-5)
        if tensor_meta(res["table"])["requires_grad"]:
            raise AssertionError(f"pos_embed='{kind}' is a fixed table: it must not be trainable")


@pytest.mark.task("2.4", points=1)
@pytest.mark.parametrize("part", ["cls_token", "pos_embed", "linear"])
def test_vit_initialisation(student, part):
    """timm's initialisation, as the docstring states it (statistics of a freshly built model)."""
    params = student.probe("fresh_parameters", init=dict(img_size=32, patch_size=8, **SMALL))
    if part == "cls_token":
        std = float(params["cls_token"].std())
        if not 1e-7 < std < 1e-5:
            raise AssertionError(f"cls_token has std {std:.3g}; it must start as normal noise with std 1e-6")
    elif part == "pos_embed":
        std, top = float(params["pos_embed"].std()), float(np.abs(params["pos_embed"]).max())
        if not (0.015 < std < 0.025 and top < 0.1):
            raise AssertionError(f"a learned pos_embed has std {std:.3g} (largest |value| {top:.3g}); it must start "
                                 "trunc-normal with std 0.02")
    else:
        linear = [k.removesuffix(".weight") for k in params if k.endswith(".weight")
                  and k.split(".")[-2] in ("qkv", "proj", "fc1", "fc2", "head") and "patch_embed" not in k]
        for name in linear:
            std = float(params[f"{name}.weight"].std())
            if not 0.015 < std < 0.025:
                raise AssertionError(f"{name}.weight has std {std:.3g}; every nn.Linear weight must start "
                                     "trunc-normal with std 0.02 (init_vit_weights)")
            if np.any(params[f"{name}.bias"] != 0):
                raise AssertionError(f"{name}.bias does not start at 0 (init_vit_weights)")


@pytest.mark.task("2.4", points=1)
@pytest.mark.parametrize("kind,size", [("sincos2d", 32), ("learn", 48)])
def test_vit_runs_on_the_device_and_dtype_it_is_moved_to(student, kind, size):
    """model.to("meta", torch.float64) must move and cast every table: the forward pass then runs
    on the meta device (shapes only, no numbers) and returns float64 logits there."""
    init = dict(img_size=32, patch_size=8, pos_embed=kind, **SMALL)
    res = student.probe("moved_forward", init=init, size=size, device="meta", dtype="float64")
    want = {"device": "meta", "dtype": "float64", "shape": [2, 10]}
    if res != want:
        raise AssertionError(f"VisionTransformer(pos_embed='{kind}').to('meta', torch.float64) on {size}x{size} "
                             f"images gave logits {res}, expected {want} (a table that is a plain attribute, not "
                             "a parameter or buffer, stays behind on the CPU)")


# ---------------------------------------------------------------- Task 2.5: cost
COST_CONFIGS = [
    dict(img_size=32, patch_size=4, **SMALL),
    dict(img_size=32, patch_size=8, **SMALL),
    dict(img_size=32, patch_size=16, **SMALL),
    dict(img_size=(48, 32), patch_size=8, in_chans=2, num_classes=7, embed_dim=40, depth=3, num_heads=5,
         mlp_ratio=3.0),
]


def reference_flops(img_size, patch_size, embed_dim, depth, mlp_ratio, num_classes, in_chans=3, **_):
    h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
    n = (h // patch_size) * (w // patch_size)
    t, d, m = n + 1, embed_dim, int(embed_dim * mlp_ratio)
    per_block = 2 * t * d * (3 * d) + 2 * (2 * t * t * d) + 2 * t * d * d + 2 * (2 * t * d * m)
    return 2 * n * patch_size * patch_size * in_chans * d + depth * per_block + 2 * d * num_classes


def config_id(cfg):
    return f"{cfg['img_size']}-P{cfg['patch_size']}"


@pytest.mark.task("2.5", points=1)
def test_num_patches(student):
    for size, p, n in [(32, 4, 64), (32, 8, 16), (32, 16, 4), (224, 16, 196), ((48, 32), 8, 24)]:
        got = student.fn("vit.num_patches", size, p)
        if got != n:
            raise AssertionError(f"num_patches({size}, {p}) = {got}; expected {n}")


@pytest.mark.task("2.5", points=3)
@pytest.mark.parametrize("cfg", COST_CONFIGS, ids=config_id)
def test_flop_formula(student, cfg):
    got = student.fn("vit.vit_flops", **cfg)
    expected = reference_flops(**cfg)
    if got != expected:
        raise AssertionError(f"vit_flops({cfg}) = {got}; expected {expected} (2 FLOPs per multiply-add of "
                             "every matrix product: patch embedding, qkv, QK^T, AV, proj, fc1, fc2, head on CLS)")


@pytest.mark.task("2.5", points=2)
@pytest.mark.parametrize("cfg", COST_CONFIGS, ids=config_id)
def test_model_flops_measured_with_flop_counter(student, cfg):
    res = student.probe("measured_flops", init=cfg)
    expected = reference_flops(**cfg)
    if res["flops"] != expected:
        raise AssertionError(f"FlopCounterMode counts {res['flops']} FLOPs for your VisionTransformer({cfg}); "
                             f"the architecture does {expected} (extra or missing matrix products?)")
    if res["logits_shape"] != [1, cfg["num_classes"]]:
        raise AssertionError(f"logits shape {res['logits_shape']}, expected [1, {cfg['num_classes']}]")


@pytest.mark.task("2.5", points=1)
@pytest.mark.parametrize("cfg", COST_CONFIGS[::3], ids=config_id)
def test_param_formula_matches_your_model(student, cfg):
    for extra in ({}, {"qkv_bias": False}, {"pos_embed": "sincos2d"}):
        formula = student.fn("vit.vit_num_params", **cfg, **extra)
        counted = student.probe("trainable_parameters", init=dict(cfg, **extra))
        if formula != counted:
            raise AssertionError(f"vit_num_params({dict(cfg, **extra)}) = {formula}, but that VisionTransformer "
                                 f"has {counted} trainable parameters")


# ================================================================ against timm
# The tests below compare with timm, imported on first use (after every test above has run).


@pytest.mark.task("2.3", points=3)
@pytest.mark.parametrize("old,new", [((4, 4), (6, 6)), ((8, 8), (4, 4)), ((4, 4), (3, 5)), ((2, 4), (4, 6))])
def test_resize_pos_embed_matches_timm(student, old, new):
    table = rand(1, 1 + old[0] * old[1], 12, seed=7)
    resized = student.fn("positions.resize_pos_embed", table, new, old_grid=old)
    ref = timm_lib().resample(table, list(new), list(old), num_prefix_tokens=1,
                                             antialias=False, interpolation="bilinear")
    assert_close(resized[:, :1], table[:, :1].numpy(), "the CLS row must be kept as it is")
    assert_close(resized, ref, f"resize_pos_embed {old} -> {new} vs timm.layers.resample_abs_pos_embed "
                 "(bilinear, align_corners=False, no antialias)")


@pytest.mark.task("2.3", points=1)
def test_resize_pos_embed_square_default(student):
    table = rand(1, 1 + 16, 8, seed=8)
    resized = student.fn("positions.resize_pos_embed", table, (2, 2))
    ref = timm_lib().resample(table, [2, 2], None, num_prefix_tokens=1,
                                             antialias=False, interpolation="bilinear")
    assert_close(resized, ref, "resize_pos_embed(table of a 4x4 grid, (2, 2)) with old_grid left out (square)")


@pytest.mark.task("2.4", points=5)
@pytest.mark.parametrize("img_size,p", [(32, 4), (32, 8), (32, 16), ((32, 48), 8)])
def test_vit_matches_timm(student, img_size, p):
    ref, init = timm_vit(img_size, p, seed=p)
    h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
    images = rand(3, 3, h, w, seed=9)
    logits = student_vit(student, init, state(ref), images)
    with torch.no_grad():
        expected = ref(images)
    assert_close(logits, expected, f"logits of a {h}x{w}, P={p} ViT with timm's weights (loaded strict) "
                 "vs timm's VisionTransformer", atol=1e-5)


@pytest.mark.task("2.4", points=2)
def test_block_matches_timm_on_small_activations(student):
    """Activations of scale 0.01: LayerNorm's eps (1e-6 vs 1e-5) changes the output by percents."""
    torch.manual_seed(0)
    ref = randomise(timm_lib().Block(dim=24, num_heads=4, mlp_ratio=3.0, qkv_bias=True), seed=10)
    with torch.no_grad():
        ref.attn.proj.weight.mul_(0.02)
        ref.attn.proj.bias.mul_(0.02)
        ref.mlp.fc2.weight.mul_(0.02)
        ref.mlp.fc2.bias.mul_(0.02)
    x = 0.01 * rand(2, 7, 24, seed=11)
    out = student.module("vit.Block", init=dict(dim=24, num_heads=4, mlp_ratio=3.0, qkv_bias=True),
                         state=state(ref))(x)
    with torch.no_grad():
        expected = ref(x)
    assert_close(out, expected, "Block output on small activations vs timm's Block "
                 "(pre-norm, LayerNorm eps=1e-6)", atol=1e-7, rtol=1e-4)


@pytest.mark.task("2.4", points=1)
def test_final_norm_eps(student):
    """depth=0: the logits are head(norm(cls + pos[0])); a tiny CLS token makes eps visible."""
    ref, init = timm_vit(32, 8, seed=12, depth=0)
    with torch.no_grad():
        ref.cls_token.mul_(0.005)
        ref.pos_embed.mul_(0.005)
    images = rand(2, 3, 32, 32, seed=13)
    with torch.no_grad():
        expected = ref(images)
    assert_close(student_vit(student, init, state(ref), images), expected,
                 "logits of a depth-0 ViT with a tiny CLS token (the final LayerNorm's eps must be 1e-6)")


@pytest.mark.task("2.4", points=1)
def test_forward_features_are_the_normed_tokens(student):
    """forward_features: all T tokens after the final LayerNorm, CLS first, as timm's."""
    ref, init = timm_vit(32, 8, seed=16)
    images = rand(2, 3, 32, 32, seed=18)
    tokens = student.module(VIT, init=init, state=state(ref)).run(images, method="forward_features")["outputs"][0]
    with torch.no_grad():
        expected = ref.forward_features(images)
    assert_close(tokens, expected, "forward_features of a 32x32, P=8 ViT vs timm's (B, T, D) tokens after the "
                 "final LayerNorm", atol=1e-5)


@pytest.mark.task("2.4", points=1)
def test_dropout_acts_in_training_only(student):
    """dropout=0.5: Attention and Mlp are random in training mode; in eval mode the whole ViT
    gives timm's logits, as if there were no dropout."""
    x = rand(2, 5, 12, seed=19)
    for path, init in (("vit.Attention", dict(dim=12, num_heads=3, dropout=0.5)),
                       ("vit.Mlp", dict(dim=12, hidden_dim=24, dropout=0.5))):
        first, second = student.module(path, init=init, train=True).run(x, calls=2, seed=4)["outputs"]
        if np.allclose(first, second):
            raise AssertionError(f"{path}({init}) in training mode gave the same output twice: its dropout "
                                 "does not act")
    ref, init = timm_vit(32, 8, seed=20)
    images = rand(2, 3, 32, 32, seed=22)
    with torch.no_grad():
        expected = ref(images)
    assert_close(student_vit(student, dict(init, dropout=0.5), state(ref), images), expected,
                 "eval-mode logits of VisionTransformer(dropout=0.5) vs timm's without dropout", atol=1e-5)


@pytest.mark.task("2.4", points=2)
@pytest.mark.parametrize("size", [(48, 48), (24, 40)])
def test_vit_runs_at_another_resolution(student, size):
    """Trained at 32x32 (8x8 grid): at 48x48 / 24x40 the learned table is resized (bilinear)."""
    ref, init = timm_vit(32, 4, seed=14)
    grid = [size[0] // 4, size[1] // 4]
    moved = state(ref)
    moved["pos_embed"] = timm_lib().resample(moved["pos_embed"], grid, [8, 8], num_prefix_tokens=1,
                                                            antialias=False, interpolation="bilinear")
    big = timm_lib().ViT(img_size=size, patch_size=4, qkv_bias=True, class_token=True, global_pool="token", **SMALL)
    big.load_state_dict(moved)
    images = rand(2, 3, *size, seed=15)
    with torch.no_grad():
        expected = big.eval()(images)
    assert_close(student_vit(student, init, state(ref), images), expected,
                 f"logits of a ViT built for 32x32 run on {size[0]}x{size[1]} images (position table resized)",
                 atol=1e-5)


@pytest.mark.task("2.5", points=2)
@pytest.mark.parametrize("cfg", COST_CONFIGS, ids=config_id)
def test_param_formula_matches_timm(student, cfg):
    got = student.fn("vit.vit_num_params", **cfg)
    torch.manual_seed(0)
    expected = sum(p.numel() for p in timm_lib().ViT(**cfg, qkv_bias=True, global_pool="token").parameters())
    if got != expected:
        raise AssertionError(f"vit_num_params({cfg}) = {got}; timm's model has {expected} parameters")
    no_bias = student.fn("vit.vit_num_params", qkv_bias=False, **cfg)
    if got - no_bias != 3 * cfg["embed_dim"] * cfg["depth"]:
        raise AssertionError("vit_num_params must drop the qkv bias (3D per block) when qkv_bias=False")
