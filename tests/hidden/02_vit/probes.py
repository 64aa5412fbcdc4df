"""Week 2 probes: run in the sandboxed worker with the student's vitcourse package."""

import torch
from torch.utils.flop_counter import FlopCounterMode


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
