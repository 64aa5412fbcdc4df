"""Week 4 public tests: quick checks you can run while you work.

    vitgrade check 4            # a table with hints
    pytest tests/public/04_swin # plain pytest

They check shapes, a window partition and a relative position index small enough to work out by
hand, the values a shift mask may take and timm's parameter names. Passing them means the basics
are in place; the hidden tests (window functions, masks, blocks, patch merging and whole models
against timm with copied weights) decide the grade.
"""

import pytest
import torch

from vitcourse.swin import (
    PatchMerging,
    SwinTransformer,
    SwinTransformerBlock,
    WindowAttention,
    relative_position_bias,
    relative_position_index,
    shift_region_labels,
    shifted_window_mask,
    window_partition,
    window_reverse,
)


@pytest.mark.task("4.1")
def test_window_partition_by_hand():
    # A 4x4 map numbered 0..15 row by row, 2x2 windows: four windows in raster order.
    x = torch.arange(16.0).reshape(1, 4, 4, 1)
    windows = window_partition(x, 2)
    assert windows.shape == (4, 2, 2, 1), "(B, H, W, C) -> (B * nW, ws, ws, C)"
    expected = torch.tensor([[0.0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]])
    assert torch.equal(windows.reshape(4, 4), expected), (
        f"windows go left to right, then down, and each window is read row by row; got\n{windows.reshape(4, 4)}")


@pytest.mark.task("4.1")
def test_window_round_trip_non_square():
    x = torch.randn(2, 8, 12, 3)
    torch.testing.assert_close(window_reverse(window_partition(x, 4), 4, 8, 12), x,
                               msg="window_reverse(window_partition(x, ws), ws, H, W) must give x back")


@pytest.mark.task("4.2")
def test_relative_position_index_by_hand():
    # 2x2 window: tokens at (0,0), (0,1), (1,0), (1,1); the table has 3 x 3 = 9 rows, offset (0, 0) is row 4.
    index = relative_position_index(2)
    assert index.shape == (4, 4) and not index.is_floating_point(), "an (N, N) integer tensor"
    assert index.diagonal().tolist() == [4, 4, 4, 4], "a token and itself: offset (0, 0) -> row (0+1)*3 + (0+1) = 4"
    assert index[1, 0] == 5 and index[0, 1] == 3, "token 1 is one column right of token 0: offset (0, +1) -> row 5"
    table = torch.randn(9, 3)
    assert relative_position_bias(table, index).shape == (3, 4, 4), "one (N, N) bias map per head: (nH, N, N)"


@pytest.mark.task("4.3")
def test_window_attention_shapes_and_names():
    attn = WindowAttention(dim=12, num_heads=3, window_size=4)
    assert attn(torch.randn(6, 16, 12)).shape == (6, 16, 12), "(B * nW, N, C) -> (B * nW, N, C)"
    assert attn.relative_position_bias_table.shape == (7 * 7, 3), "((2 ws - 1)^2, nH)"
    names = set(attn.state_dict())
    assert names == {"relative_position_bias_table", "qkv.weight", "qkv.bias", "proj.weight", "proj.bias"}, (
        f"timm's names, and relative_position_index registered with persistent=False; got {sorted(names)}")


@pytest.mark.task("4.4")
def test_shift_mask_values_and_shape():
    labels = shift_region_labels((8, 8), 4, 2)
    assert labels.shape == (8, 8) and len(labels.unique()) == 9, "a shifted 8x8 map with 4x4 windows has 9 regions"
    mask = shifted_window_mask((8, 8), 4, 2)
    assert mask.shape == (4, 16, 16), "(nW, N, N): one mask per window of the shifted map"
    assert set(mask.unique().tolist()) == {0.0, -100.0}, "0 within a region, -100 across regions"
    assert (mask[0] == 0).all(), "the top-left window holds no wrapped-around tokens: nothing masked"


@pytest.mark.task("4.5")
@pytest.mark.parametrize("shift", [0, 2])
def test_block_shape_and_names(shift):
    block = SwinTransformerBlock(dim=12, input_resolution=(8, 8), num_heads=3, window_size=4, shift_size=shift)
    assert block(torch.randn(2, 8, 8, 12)).shape == (2, 8, 8, 12), "(B, H, W, C) -> (B, H, W, C)"
    names = set(block.state_dict())
    for name in ("norm1.weight", "attn.relative_position_bias_table", "attn.qkv.weight", "attn.proj.weight",
                 "norm2.bias", "mlp.fc1.weight", "mlp.fc2.bias"):
        assert name in names, f"timm's parameter names: {name} is missing from {sorted(names)}"
    assert "attn_mask" not in names, "attn_mask is a buffer with persistent=False (not saved)"
    assert (block.attn_mask is None) == (shift == 0), "attn_mask is None exactly when the block does not shift"


@pytest.mark.task("4.6")
def test_patch_merging_shape():
    merge = PatchMerging(dim=6)
    assert merge(torch.randn(2, 8, 12, 6)).shape == (2, 4, 6, 12), "(B, H, W, C) -> (B, H/2, W/2, 2C)"
    assert merge.reduction.bias is None, "reduction is nn.Linear(4C, 2C, bias=False)"


@pytest.mark.task("4.7")
def test_swin_logits_and_names():
    model = SwinTransformer(img_size=32, patch_size=2, embed_dim=16, depths=(2, 2), num_heads=(2, 4),
                            window_size=4, num_classes=10)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10), "logits: (B, num_classes)"
    names = set(model.state_dict())
    for name in ("patch_embed.proj.weight", "patch_embed.norm.weight", "layers.0.blocks.1.attn.qkv.weight",
                 "layers.1.downsample.reduction.weight", "layers.1.blocks.0.norm1.weight", "norm.weight",
                 "head.fc.weight"):
        assert name in names, f"timm's parameter names: {name} is missing"
    assert "layers.0.downsample.reduction.weight" not in names, "stage 0 has no patch merging (timm's layout)"
