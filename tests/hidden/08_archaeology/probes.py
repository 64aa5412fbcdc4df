"""Week 8 probes: run in the sandboxed worker, next to the student's vitcourse package.

They build the model the judge describes (its parameters come from the judge), run the student's attack
on it, and return the adversarial images and what happened to the model: the modes it ran in, its mode,
gradients and flags afterwards. They never judge: the tests recompute margins, distances and success in
the grader's process from the returned images and their own copy of the model.
"""

import torch
from torch import nn


class Recorded(nn.Module):
    """``body`` behind an optional dropout; every forward pass records whether it ran in training mode."""

    def __init__(self, body: nn.Module, dropout: float = 0.0) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.body = body
        self.modes: list[bool] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.modes.append(self.training)
        return self.body(self.drop(images))


def build(kind: str, state: dict, n: int, num_classes: int, hidden: int = 0) -> nn.Module:
    """The judge's model: "linear" (flatten, linear) or "mlp" (flatten, linear, tanh, linear), loaded strictly."""
    if kind == "linear":
        body = nn.Sequential(nn.Flatten(), nn.Linear(n, num_classes))
    elif kind == "mlp":
        body = nn.Sequential(nn.Flatten(), nn.Linear(n, hidden), nn.Tanh(), nn.Linear(hidden, num_classes))
    else:
        raise ValueError(kind)
    body.load_state_dict(state)
    return body


def attack(kind: str, state: dict, images: torch.Tensor, labels: torch.Tensor, options: dict, num_classes: int,
           hidden: int = 0, dropout: float = 0.0, train: bool = False, preset_grads: dict | None = None) -> dict:
    """The student's carlini_wagner_l2 on the judge's model; the images it returns and the model's state after."""
    from vitcourse.cw import carlini_wagner_l2

    model = Recorded(build(kind, state, images[0].numel(), num_classes, hidden), dropout)
    for name, param in model.named_parameters():
        if preset_grads is not None and name in preset_grads:
            param.grad = preset_grads[name].clone()
    model.train(train)
    adversarial = carlini_wagner_l2(model, images, labels, **options)
    params = dict(model.named_parameters())
    empty = torch.zeros(0)
    return {"adversarial": adversarial,
            "images_after": images,  # the input as the call left it (the judge compares it with what it sent)
            "modes": list(model.modes),
            "training_after": model.training,
            "grads": {name: (p.grad.detach().clone() if p.grad is not None else empty) for name, p in params.items()},
            "requires_grad": {name: p.requires_grad for name, p in params.items()}}
