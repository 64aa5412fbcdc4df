"""The profiling utility (vitcourse.profiling) on models whose costs can be worked out by hand."""

import pytest
import torch
from torch import nn

from vitcourse.profiling import PeakMemory, count_flops, count_params, latency, peak_memory, profile_model


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4)).eval()


def test_params_by_hand():
    assert count_params(mlp()) == (8 * 16 + 16) + (16 * 4 + 4)  # 212
    frozen = mlp()
    frozen[0].requires_grad_(False)
    assert count_params(frozen, trainable_only=True) == 16 * 4 + 4


def test_flops_by_hand():
    x = torch.randn(5, 8)
    # 2 FLOPs per multiply-add of each matrix product; the biases and the GELU are not counted.
    assert count_flops(mlp(), x) == 2 * 5 * 8 * 16 + 2 * 5 * 16 * 4  # 1920
    conv = nn.Conv2d(3, 4, kernel_size=3)  # 6x6 -> 4x4: 16 positions x 4 filters x 27 weights
    assert count_flops(conv, torch.randn(1, 3, 6, 6)) == 2 * 16 * 4 * 27
    attention = lambda q, k: (q @ k.transpose(-2, -1)).softmax(-1) @ k  # noqa: E731
    q, k = torch.randn(2, 3, 10, 4), torch.randn(2, 3, 7, 4)
    flops = count_flops(attention, q, k, by_operator=True)
    # per batch element and head: Q K^T is (10 x 4)(4 x 7), weights @ V is (10 x 7)(7 x 4): 280 multiply-adds each
    assert flops == {"bmm": 2 * 3 * 2 * (2 * 10 * 7 * 4)}, flops


def test_flops_of_fused_attention_on_the_cpu():
    """F.scaled_dot_product_attention runs a CPU kernel FlopCounterMode has no formula for
    (pytorch/pytorch#195460); the profiler counts its two products like the GPU kernels."""
    q, k, v = torch.randn(2, 3, 10, 4), torch.randn(2, 3, 7, 4), torch.randn(2, 3, 7, 4)
    fused = lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v)  # noqa: E731
    assert count_flops(fused, q, k, v) == 2 * 3 * 2 * (2 * 10 * 7 * 4)


def test_flops_on_meta_tensors_cost_nothing_and_agree():
    big = nn.Linear(4096, 4096, device="meta")
    assert count_flops(big, torch.empty(10_000, 4096, device="meta")) == 2 * 10_000 * 4096 * 4096


def test_peak_memory_by_hand_on_cpu():
    # Linear 1 writes (5, 16) floats (320 bytes); GELU writes another 320 while its input is alive;
    # then Linear 1's output is dropped and Linear 2 writes (5, 4) = 80 bytes: the peak is 640.
    assert peak_memory(mlp(), torch.randn(5, 8)) == 2 * 5 * 16 * 4
    with PeakMemory() as tracker:
        x = torch.randn(100, 100)
        y = x.t()  # a view: no new storage
        x.mul_(2)  # in place: no new storage
        del x, y
    assert tracker.peak == 100 * 100 * 4 and tracker.live == 0


def test_latency_and_profile_row():
    times = latency(mlp(), torch.randn(5, 8), repeats=3, warmup=1)
    assert len(times) == 3 and all(t > 0 for t in times)
    row = profile_model(mlp(), (5, 8), name="mlp", repeats=2)
    assert (row.params, row.flops, row.peak_memory_bytes) == (212, 1920, 640)
    assert row.batch == 5 and row.images_per_second == pytest.approx(5 / row.latency_s)
    assert row.cpu_s > 0 and row.threads == torch.get_num_threads()
