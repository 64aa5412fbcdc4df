"""Week 2 probes: run in the sandboxed worker with the student's vitcourse package."""

import importlib

import torch
from torch.utils.flop_counter import FlopCounterMode


def _resolve(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def call(fn: str, args: list | None = None, kwargs: dict | None = None) -> list:
    """Call the function ``fn`` (dotted path) of the student's package; return its outputs as a list."""
    out = _resolve(fn)(*(args or []), **(kwargs or {}))
    outputs = list(out) if isinstance(out, (tuple, list)) else [out]
    return [o.detach() if torch.is_tensor(o) else o for o in outputs]


def measured_flops(init: dict, batch: int = 1) -> dict:
    """FlopCounterMode's count for one forward pass of the student's VisionTransformer(**init)."""
    from vitcourse.vit import VisionTransformer

    model = VisionTransformer(**init).eval()
    height, width = (init["img_size"],) * 2 if isinstance(init["img_size"], int) else init["img_size"]
    images = torch.randn(batch, init.get("in_chans", 3), height, width)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        logits = model(images)
    return {"flops": int(counter.get_total_flops()), "logits_shape": list(logits.shape),
            "trainable": int(sum(p.numel() for p in model.parameters() if p.requires_grad))}


def position_table(init: dict) -> dict:
    """The student's VisionTransformer(**init).pos_embed, and whether it is trainable."""
    from vitcourse.vit import VisionTransformer

    table = VisionTransformer(**init).pos_embed
    if table is None:
        return {"table": None, "trainable": False}
    return {"table": table.detach(), "trainable": bool(table.requires_grad)}
