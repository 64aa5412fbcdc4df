"""Week 4 probes: run in the sandboxed worker with the student's vitcourse package."""

import torch


def window_attention_calls(init: dict, state: dict, x: torch.Tensor, mask=None) -> dict:
    """Build the student's WindowAttention, run it once, and count the calls that reach a
    Week 1 ``ScaledDotProductAttention`` inside it (any submodule name)."""
    from vitcourse.attention import ScaledDotProductAttention
    from vitcourse.swin import WindowAttention

    module = WindowAttention(**init)
    module.load_state_dict(state, strict=True)
    module.eval()
    cores = [m for m in module.modules() if isinstance(m, ScaledDotProductAttention)]
    calls = []
    for core in cores:
        core.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        out = module(x, mask)
    return {"cores": len(cores), "calls": len(calls), "output": out}


def block_settings(init: dict) -> dict:
    """The window and shift a student's SwinTransformerBlock(**init) settled on, and its mask."""
    from vitcourse.swin import SwinTransformerBlock

    block = SwinTransformerBlock(**init)
    mask = getattr(block, "attn_mask", "missing")
    return {"window_size": tuple(int(v) for v in block.window_size),
            "shift_size": tuple(int(v) for v in block.shift_size),
            "attn_mask": mask.detach() if torch.is_tensor(mask) else mask}
