"""What a model costs at a given input size: parameters, FLOPs, latency and peak memory.

A course utility (not an exercise), used from Week 4 on to compare architectures:

    from vitcourse.profiling import profile_model, format_profiles
    row = profile_model(model, (1, 3, 224, 224), name="Swin-T")
    print(format_profiles([row]))

What each number means:

* **params**: every parameter of the model (trainable or not), counted once.
* **flops**: what ``torch.utils.flop_counter.FlopCounterMode`` counts for one forward pass of the
  whole batch: every matrix product and convolution at 2 FLOPs per multiply-add, plus the two
  products of a fused ``F.scaled_dot_product_attention`` on the CPU, which this PyTorch's counter
  misses (see ``EXTRA_FLOP_FORMULAS``). Normalisation,
  softmax, activations, additions, biases and data movement (rolls, permutes, copies) are not
  counted. Papers often quote multiply-adds as "FLOPs" (Swin-T: "4.5G"); this is twice that.
* **latency**: wall-clock seconds of one forward pass (``torch.no_grad``, eval mode), the median of
  ``repeats`` runs after ``warmup`` runs; on a GPU the device is synchronised around each run. Next
  to it, on the CPU, the process CPU seconds of the same passes (all threads together), which a
  busy shared machine inflates less than the wall clock.
* **peak memory**: the most memory the forward pass had allocated at any one time beyond what was
  allocated before it (activations and temporaries; the weights and the input are not included).
  On CUDA, from ``torch.cuda.max_memory_allocated``; on the CPU, by :class:`PeakMemory`, which
  watches every tensor the dispatcher creates and frees (the CPU allocator keeps no statistics).

Latency depends on the machine, its load and the thread count: compare numbers from one run on one
machine only. FLOPs and memory do not depend on the machine.
"""

from __future__ import annotations

import statistics
import time
import weakref
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode, flop_registry, sdpa_flop_count
from torch.utils.weak import WeakIdKeyDictionary


def _fused_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """Q K^T and weights @ V of a fused attention kernel, from the (B, nH, L, Dh) shapes."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# On the CPU, F.scaled_dot_product_attention runs the kernel _scaled_dot_product_flash_attention_for_cpu,
# for which this PyTorch has no FLOP formula (pytorch/pytorch#195460): FlopCounterMode would count a timm
# ViT's attention products as 0 on the CPU and correctly on a GPU. Count it like the GPU kernels.
_CPU_SDPA = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
EXTRA_FLOP_FORMULAS = ({_CPU_SDPA: _fused_attention_flops}
                       if _CPU_SDPA is not None and _CPU_SDPA not in flop_registry else {})


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """The number of parameters (shared ones once); only those with requires_grad if asked."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_flops(model: nn.Module, *inputs: Tensor, by_operator: bool = False) -> int | dict[str, int]:
    """FLOPs of ``model(*inputs)`` (no_grad) as FlopCounterMode counts them.

    With ``by_operator`` the total is split by ATen operator, e.g. {"mm": ..., "bmm": ...,
    "convolution": ...}: linear layers are ``mm``/``addmm``, attention's two products ``bmm``.
    Inputs on the ``meta`` device (and a model moved there) give the count without computing
    anything: the way to measure a model at a size too large to run.
    """
    counter = FlopCounterMode(display=False, custom_mapping=EXTRA_FLOP_FORMULAS)
    with torch.no_grad(), counter:
        model(*inputs)
    if not by_operator:
        return int(counter.get_total_flops())
    totals = counter.get_flop_counts().get("Global", {})
    return {str(op).removeprefix("aten."): int(n) for op, n in totals.items()}  # "aten.bmm" -> "bmm"


class PeakMemory(TorchDispatchMode):
    """Track the bytes of tensor storage that operators allocate inside the ``with`` block.

    Every new storage an operator returns (not a view or an in-place result, whose storage was
    one of its inputs) is counted until it is freed; ``peak`` is the largest total at any moment,
    ``live`` what is still held at the end. Storage created before the block (weights, inputs)
    is not counted.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._seen: WeakIdKeyDictionary = WeakIdKeyDictionary()

    def _freed(self, nbytes: int) -> None:
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {id(t.untyped_storage()) for t in tree_flatten((args, kwargs))[0]
                  if isinstance(t, Tensor) and t.device.type != "meta"}
        for tensor in tree_flatten(out)[0]:
            if not isinstance(tensor, Tensor) or tensor.device.type == "meta":
                continue
            storage = tensor.untyped_storage()
            if id(storage) in inputs or storage in self._seen:
                continue
            nbytes = storage.nbytes()
            self._seen[storage] = nbytes
            self.live += nbytes
            self.peak = max(self.peak, self.live)
            weakref.finalize(storage, self._freed, nbytes)  # runs when the storage is freed
        return out


def peak_memory(model: nn.Module, *inputs: Tensor) -> int:
    """Peak bytes allocated by ``model(*inputs)`` (no_grad) beyond what was allocated before."""
    device = inputs[0].device
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        with torch.no_grad():
            model(*inputs)
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - before)
    tracker = PeakMemory()
    with torch.no_grad(), tracker:
        model(*inputs)
    return int(tracker.peak)


def timed_passes(model: nn.Module, *inputs: Tensor, repeats: int = 3, warmup: int = 1
                 ) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU seconds of each of ``repeats`` forward passes (no_grad), after
    ``warmup`` untimed ones. CPU seconds add up every thread of this process (a busy-waiting
    OpenMP thread counts too); on a shared machine they are the steadier of the two numbers."""
    device = inputs[0].device
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    walls, cpus = [], []
    with torch.no_grad():
        for i in range(warmup + repeats):
            sync()
            start, cpu_start = time.perf_counter(), time.process_time()
            model(*inputs)
            sync()
            if i >= warmup:
                walls.append(time.perf_counter() - start)
                cpus.append(time.process_time() - cpu_start)
    return walls, cpus


def latency(model: nn.Module, *inputs: Tensor, repeats: int = 3, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of each of ``repeats`` timed forward passes (no_grad), after ``warmup`` untimed ones."""
    return timed_passes(model, *inputs, repeats=repeats, warmup=warmup)[0]


@dataclass(frozen=True)
class Profile:
    """One row of a comparison: a model at one input size on one device."""

    name: str
    input_size: tuple[int, ...]  # (B, C, H, W)
    device: str
    params: int
    flops: int  # one forward pass of the whole batch
    latency_s: float  # median wall-clock seconds of one pass
    peak_memory_bytes: int
    cpu_s: float = float("nan")  # median process CPU seconds of one pass (all threads)
    threads: int = 1  # torch.get_num_threads() during the measurement

    @property
    def batch(self) -> int:
        return self.input_size[0]

    @property
    def gflops_per_image(self) -> float:
        return self.flops / self.batch / 1e9

    @property
    def images_per_second(self) -> float:
        return self.batch / self.latency_s


def profile_model(model: nn.Module, input_size: tuple[int, ...], name: str = "", repeats: int = 3,
                  warmup: int = 1, device: str | torch.device | None = None) -> Profile:
    """Parameters, FLOPs, median latency and peak memory of ``model`` on random input of ``input_size``.

    The model is put in eval mode and moved to ``device`` (default: where its parameters are).
    One untimed pass counts the FLOPs, one measures memory, then ``warmup`` + ``repeats`` passes
    are timed.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.eval().to(device)
    images = torch.randn(*input_size, device=device)
    flops = count_flops(model, images)
    memory = peak_memory(model, images)
    walls, cpus = timed_passes(model, images, repeats=repeats, warmup=warmup)
    return Profile(name or type(model).__name__, tuple(input_size), str(device), count_params(model), flops,
                   statistics.median(walls), memory, statistics.median(cpus), torch.get_num_threads())


def format_profiles(rows: list[Profile]) -> str:
    """A plain-text table of profiles, one line each."""
    head = (f"{'model':<18} {'input':>13} {'device':>6} {'threads':>7} {'params':>8} {'GFLOPs/img':>10} "
            f"{'latency':>10} {'CPU/pass':>10} {'img/s':>8} {'peak mem':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        cpu = f"{r.cpu_s * 1e3:>8.1f}ms" if r.device == "cpu" else f"{'-':>10}"
        lines.append(f"{r.name:<18} {'x'.join(map(str, r.input_size)):>13} {r.device:>6} {r.threads:>7} "
                     f"{r.params / 1e6:>7.2f}M {r.gflops_per_image:>10.3f} {r.latency_s * 1e3:>8.1f}ms {cpu} "
                     f"{r.images_per_second:>8.1f} {r.peak_memory_bytes / 2**20:>7.1f}MiB")
    return "\n".join(lines)
