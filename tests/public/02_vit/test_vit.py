"""Week 2 public tests: quick checks you can run while you work.

    vitgrade check 2            # a table with hints
    pytest tests/public/02_vit  # plain pytest (or: python3 course.py test 2)

They check shapes, the patch order on a tiny example, error messages and parameter names.
Passing them means the basics are in place; the hidden tests (parity with timm's
VisionTransformer, position resizing against timm, the sin/cos formulas, the FLOP count
measured with FlopCounterMode) decide the grade.
"""

import pytest
import torch
import torch.nn.functional as F

from vitcourse.patches import PatchEmbedding, conv_weight_to_linear, patchify, unpatchify
from vitcourse.positions import resize_pos_embed, sincos_1d, sincos_2d
from vitcourse.vit import VisionTransformer, num_patches, vit_flops, vit_num_params

SMALL = dict(embed_dim=32, depth=2, num_heads=4, mlp_ratio=2.0, num_classes=10)


@pytest.mark.task("2.1")
def test_patchify_shape():
    patches = patchify(torch.randn(2, 3, 32, 32), 8)
    assert patches.shape == (2, 16, 8 * 8 * 3), "patchify(B, C, H, W) -> (B, N, P*P*C), N = (H/P)*(W/P)"


@pytest.mark.task("2.1")
def test_patchify_raster_order_by_hand():
    # A 1-channel 4x4 image numbered 0..15 row by row, P=2: four 2x2 patches.
    image = torch.arange(16.0).reshape(1, 1, 4, 4)
    patches = patchify(image, 2)
    expected = torch.tensor([[[0.0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]])
    assert torch.equal(patches, expected), (
        "patches go left to right, then top to bottom (raster order), and each patch is read row "
        f"by row; got\n{patches}")


@pytest.mark.task("2.1")
def test_patchify_channels_are_innermost():
    # One 2x2 patch with 2 channels: channel 0 holds 0..3, channel 1 holds 10..13.
    image = torch.stack([torch.arange(4.0), 10 + torch.arange(4.0)]).reshape(1, 2, 2, 2)
    patches = patchify(image, 2)
    assert patches.tolist() == [[[0.0, 10, 1, 11, 2, 12, 3, 13]]], (
        "inside a patch the order is (p1, p2, c): both channels of pixel (0, 0), then of pixel (0, 1), ...")


@pytest.mark.task("2.1")
def test_unpatchify_round_trip():
    x = torch.randn(2, 3, 8, 12)
    torch.testing.assert_close(unpatchify(patchify(x, 4), 4, (8, 12)), x,
                               msg="unpatchify(patchify(x, P), P, (H, W)) must give x back")


@pytest.mark.task("2.1")
def test_patchify_error_names_the_sizes():
    with pytest.raises(ValueError) as info:
        patchify(torch.randn(1, 3, 30, 32), 4)
    assert "30" in str(info.value) and "4" in str(info.value), (
        f"the error should say which size does not divide by which patch size; it says: {info.value}")


@pytest.mark.task("2.2")
def test_patch_embedding_shape_and_names():
    embed = PatchEmbedding(patch_size=4, in_chans=3, embed_dim=16)
    assert embed(torch.randn(2, 3, 32, 32)).shape == (2, 64, 16), "PatchEmbedding: (B, C, H, W) -> (B, N, D)"
    assert embed.proj.weight.shape == (16, 3, 4, 4), "proj.weight is stored like a Conv2d kernel: (D, C, P, P)"
    assert conv_weight_to_linear(embed.proj.weight).shape == (16, 48), "conv_weight_to_linear: (D, P*P*C)"


@pytest.mark.task("2.2")
def test_patch_embedding_equals_conv():
    embed = PatchEmbedding(patch_size=4, in_chans=3, embed_dim=8)
    x = torch.randn(1, 3, 8, 8)
    conv = F.conv2d(x, embed.proj.weight, embed.proj.bias, stride=4).flatten(2).transpose(1, 2)
    torch.testing.assert_close(embed(x), conv, msg="PatchEmbedding must equal Conv2d(kernel=stride=P), "
                               "flattened to (B, N, D) in raster order")


@pytest.mark.task("2.3")
def test_sincos_shapes_and_first_row():
    table = sincos_1d(10, 16)
    assert table.shape == (10, 16), "sincos_1d(L, D) -> (L, D)"
    assert torch.allclose(table[0, 0::2], torch.zeros(8)) and torch.allclose(table[0, 1::2], torch.ones(8)), (
        "position 0: sin(0) = 0 in the even columns, cos(0) = 1 in the odd ones (interleaved)")
    assert sincos_2d(3, 5, 16).shape == (15, 16), "sincos_2d(h, w, D) -> (h*w, D)"


@pytest.mark.task("2.3")
def test_resize_keeps_cls_and_shape():
    table = torch.randn(1, 1 + 16, 8)
    resized = resize_pos_embed(table, (6, 6))
    assert resized.shape == (1, 1 + 36, 8), "4x4 grid -> 6x6 grid: (1, 1 + 36, D)"
    assert torch.equal(resized[:, 0], table[:, 0]), "the CLS row is not on the grid: keep it as it is"
    assert torch.allclose(resize_pos_embed(table, (4, 4)), table), "resizing to the same grid changes nothing"


@pytest.mark.task("2.4")
@pytest.mark.parametrize("patch_size", [4, 8, 16])
def test_vit_cifar_shapes(patch_size):
    model = VisionTransformer(img_size=32, patch_size=patch_size, **SMALL)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10), "logits: (B, num_classes)"
    n = (32 // patch_size) ** 2
    assert model.pos_embed.shape == (1, n + 1, 32), "pos_embed: (1, N + 1, D), one row for the CLS token"
    assert model.cls_token.shape == (1, 1, 32), "cls_token: (1, 1, D)"


@pytest.mark.task("2.4")
def test_vit_uses_timms_parameter_names():
    names = set(VisionTransformer(img_size=32, patch_size=8, **SMALL).state_dict())
    expected = {"cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias",
                "blocks.0.norm1.weight", "blocks.0.attn.qkv.weight", "blocks.0.attn.qkv.bias",
                "blocks.0.attn.proj.weight", "blocks.0.norm2.bias", "blocks.0.mlp.fc1.weight",
                "blocks.1.mlp.fc2.bias", "norm.weight", "head.weight", "head.bias"}
    missing = sorted(expected - names)
    assert not missing, f"parameter names must follow timm's (the hidden tests load timm's weights): missing {missing}"


@pytest.mark.task("2.4")
def test_vit_layernorm_eps():
    model = VisionTransformer(img_size=32, patch_size=8, **SMALL)
    eps = {m.eps for m in model.modules() if isinstance(m, torch.nn.LayerNorm)}
    assert eps == {1e-6}, f"every LayerNorm of a ViT uses eps=1e-6 (PyTorch's default is 1e-5); found {eps}"


@pytest.mark.task("2.5")
def test_cost_functions_run():
    assert num_patches(32, 4) == 64, "32x32 image, 4x4 patches: 8 * 8 = 64 patches"
    cfg = dict(img_size=32, patch_size=8, **SMALL)
    params = vit_num_params(**cfg)
    assert params == sum(p.numel() for p in VisionTransformer(**cfg).parameters()), (
        "vit_num_params must equal the number of trainable parameters of VisionTransformer(**cfg)")
    assert isinstance(vit_flops(**cfg), int) and vit_flops(**cfg) > 0, "vit_flops returns a positive int"
