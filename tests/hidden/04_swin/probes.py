"""Week 4 probes: run in the sandboxed worker with the student's vitcourse package.

They return outputs and facts for the hidden tests to judge; the student's package is imported inside
each function, never at module level (this module is loaded before it).
"""

import torch


def window_attention_through_core(init: dict, state: dict, x: torch.Tensor, factor: float, mask=None) -> dict:
    """The student's WindowAttention, with every Week 1 ``ScaledDotProductAttention`` inside it (any
    submodule name) made to scale the context it returns by ``factor``; the output. The judge knows what
    that output is when the attention goes through Week 1's module, and what it is when it does not."""
    from vitcourse.attention import ScaledDotProductAttention
    from vitcourse.swin import WindowAttention

    module = WindowAttention(**init)
    module.load_state_dict(state, strict=True)
    module.eval()
    for core in (m for m in module.modules() if isinstance(m, ScaledDotProductAttention)):
        core.register_forward_hook(lambda _m, _args, out: (out[0] * factor, *out[1:]))
    with torch.no_grad():
        return module(x, mask)


def block_settings(init: dict) -> dict:
    """The window and shift a student's SwinTransformerBlock(**init) settled on, and its mask."""
    from vitcourse.swin import SwinTransformerBlock

    block = SwinTransformerBlock(**init)
    mask = getattr(block, "attn_mask", "missing")
    return {"window_size": tuple(int(v) for v in block.window_size),
            "shift_size": tuple(int(v) for v in block.shift_size),
            "attn_mask": mask.detach() if torch.is_tensor(mask) else mask}


def block_on_meta(init: dict, shape: list) -> dict:
    """SwinTransformerBlock(**init) moved to the ``meta`` device (shapes without data: what moving to a GPU
    does to parameters and buffers) and run there on an input of ``shape``. The output's device and shape,
    or the error."""
    from vitcourse.swin import SwinTransformerBlock

    block = SwinTransformerBlock(**init).to("meta")
    try:
        out = block(torch.empty(shape, device="meta"))
    except Exception as exc:  # noqa: BLE001 - the error is the data
        return {"device": None, "shape": None, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    return {"device": str(out.device), "shape": list(out.shape), "error": ""}
