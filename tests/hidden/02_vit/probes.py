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
    """The student's VisionTransformer(**init).pos_embed as the model holds it (its requires_grad
    travels with it: vitgrade.hidden.tensor_meta)."""
    from vitcourse.vit import VisionTransformer

    return {"table": VisionTransformer(**init).pos_embed}


def trainable_parameters(init: dict) -> int:
    """How many trainable numbers the student's VisionTransformer(**init) holds (no forward pass)."""
    from vitcourse.vit import VisionTransformer

    return int(sum(p.numel() for p in VisionTransformer(**init).parameters() if p.requires_grad))


def fresh_parameters(init: dict) -> dict:
    """Every parameter of a freshly built VisionTransformer(**init), by name (its initialisation)."""
    from vitcourse.vit import VisionTransformer

    return {name: p.detach() for name, p in VisionTransformer(**init).named_parameters()}


def moved_forward(init: dict, size: int, device: str, dtype: str) -> dict:
    """Where and in which dtype the logits land after ``model.to(device, dtype)`` (no numbers:
    the meta device computes shapes only)."""
    from vitcourse.vit import VisionTransformer

    kind = getattr(torch, dtype)
    model = VisionTransformer(**init).to(device=device, dtype=kind).eval()
    images = torch.randn(2, init.get("in_chans", 3), size, size, device=device, dtype=kind)
    with torch.no_grad():
        logits = model(images)
    return {"device": str(logits.device), "dtype": str(logits.dtype).removeprefix("torch."),
            "shape": list(logits.shape)}
