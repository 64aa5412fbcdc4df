"""Week 7 probes: run in the sandboxed worker, next to the student's vitcourse package.

They build the models the judge describes (its configuration, its weights), call the student's code
on the judge's inputs and return what came out: maps, adversarial images, curves, matrices, and facts
about the model afterwards (its modes, its hooks, its parameters' gradients). The tests recompute
everything with the reference libraries and decide. The test file imports :func:`build` from here too,
so both processes build the same architecture.
"""

import functools

import torch
import torch.nn.functional as F
from torch import nn


class SmallCNN(nn.Module):
    """conv-BN-ReLU, dropout, conv-ReLU, pool, linear: batch norm and dropout make train mode show."""

    def __init__(self, in_chans: int = 3, width: int = 6, num_classes: int = 4, drop: float = 0.5) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.drop = nn.Dropout(drop)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(F.relu(self.bn(self.conv1(x))))
        x = F.relu(self.conv2(x))  # (B, width, H, W)
        return self.head(x.mean(dim=(2, 3)))


class MLP(nn.Module):
    """Flatten, linear, ReLU, dropout, linear: a model the judge trains itself in a fraction of a second."""

    def __init__(self, in_features: int = 16, hidden: int = 32, num_classes: int = 3, drop: float = 0.5) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.drop = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(F.relu(self.fc1(x.flatten(1)))))


def build(kind: str, config: dict) -> nn.Module:
    """The architecture ``kind`` with ``config``: "resnet" (timm's resnet18 shrunk), "vit" / "deit" (timm's
    VisionTransformer / VisionTransformerDistilled), "cnn" (:class:`SmallCNN`), "mlp" (:class:`MLP`)."""
    if kind == "resnet":
        import timm

        return timm.create_model("resnet18", pretrained=False, **config)
    if kind == "vit":
        from timm.models.vision_transformer import VisionTransformer

        return VisionTransformer(**config)
    if kind == "deit":
        from timm.models.deit import VisionTransformerDistilled

        return VisionTransformerDistilled(**config)
    if kind == "cnn":
        return SmallCNN(**config)
    if kind == "mlp":
        return MLP(**config)
    raise ValueError(kind)


def _loaded(kind: str, config: dict, state: dict, training: bool) -> nn.Module:
    model = build(kind, config)
    model.load_state_dict(state)
    return model.train(training)


def _facts(model: nn.Module) -> dict:
    """What the call left behind: every submodule's mode, hooks still registered, parameters with a .grad."""
    modules = list(model.modules())
    return {"modes": [bool(m.training) for m in modules],
            "hooks": int(sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
                             for m in modules)),
            "param_grads": [name for name, p in model.named_parameters() if p.grad is not None]}


def _record_modes(model: nn.Module) -> list:
    """A list that fills with the model's mode at each forward pass (the hook is the grader's, removed later)."""
    seen: list = []
    handle = model.register_forward_pre_hook(lambda module, args: seen.append(bool(module.training)))
    return seen, handle


def gradcam(kind: str, config: dict, state: dict, images: torch.Tensor, targets, layer: str,
            num_prefix_tokens: int | None = None, training: bool = True) -> dict:
    """The student's GradCAM(model, model.<layer>, reshape)(images, targets) on the judge's model, with
    reshape = vit_reshape_transform(num_prefix_tokens=...) when ``num_prefix_tokens`` is given."""
    from vitcourse.gradcam import GradCAM, vit_reshape_transform

    model = _loaded(kind, config, state, training)
    reshape = (functools.partial(vit_reshape_transform, num_prefix_tokens=num_prefix_tokens)
               if num_prefix_tokens is not None else None)
    cam = GradCAM(model, model.get_submodule(layer), reshape)
    maps = cam(images, targets)
    return {"maps": maps, **_facts(model)}  # as returned: a graph or a dtype would show in tensor_meta


def attack(attack_name: str, kind: str, config: dict, state: dict, images: torch.Tensor, labels: torch.Tensor,
           kwargs: dict, training: bool = True, seed: int = 0) -> dict:
    """The student's attacks.<name>(model, images, labels, **kwargs) on the judge's model (global generator
    seeded with ``seed``), the images handed over requiring grad (as a caller's might): the adversarial
    images as returned, the model's mode at each forward pass, and the facts."""
    from vitcourse import attacks

    model = _loaded(kind, config, state, training)
    seen, handle = _record_modes(model)
    torch.manual_seed(seed)
    adversarial = getattr(attacks, attack_name)(model, images.clone().requires_grad_(True), labels.clone(), **kwargs)
    handle.remove()
    return {"adversarial": adversarial, "forward_modes": seen, **_facts(model)}  # as returned (tensor_meta)


def attack_sweep(attack_name: str, kind: str, config: dict, state: dict, images: torch.Tensor, labels: torch.Tensor,
                 epsilons: list, kwargs: dict) -> list:
    """The student's attacks.<name> at each epsilon (the model in eval mode): one adversarial batch each."""
    from vitcourse import attacks

    model = _loaded(kind, config, state, False)
    torch.manual_seed(0)
    return [getattr(attacks, attack_name)(model, images.clone(), labels.clone(), eps, **kwargs).detach()
            for eps in epsilons]


def shift_attack(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, **kwargs) -> torch.Tensor:
    """The grader's stand-in attack for Tasks 7.3-7.4: a fixed pattern of signs, scaled by eps, that depends
    on the pixels and on the model's first weight (so different sources give different images)."""
    first = next(model.parameters()).detach().flatten()[0]
    pattern = torch.sign(torch.sin(97.0 * images + 13.0 * first))
    return (images + eps * pattern).clamp(0, 1)


def curve(kind: str, config: dict, state: dict, images: torch.Tensor, labels: torch.Tensor, epsilons: list,
          batch_size: int, training: bool = True) -> dict:
    """The student's robustness_curve with the grader's shift attack: the curve, the batch sizes the attack
    was called with, and the facts."""
    from vitcourse.robustness import robustness_curve

    model = _loaded(kind, config, state, training)
    calls: list = []

    def recorded(m, x, y, eps, **kw):
        calls.append([int(len(x)), float(eps)])
        return shift_attack(m, x, y, eps)

    seen, handle = _record_modes(model)
    result = robustness_curve(model, images, labels, epsilons, recorded, batch_size=batch_size)
    handle.remove()
    return {"curve": torch.as_tensor(result).detach(), "calls": calls, "forward_modes": seen, **_facts(model)}


def transfer(kind: str, configs: list, states: list, images: torch.Tensor, labels: torch.Tensor, eps: float,
             batch_size: int) -> dict:
    """The student's transfer_matrix over the judge's models, with the grader's shift attack."""
    from vitcourse.robustness import transfer_matrix

    models = [_loaded(kind, c, s, False) for c, s in zip(configs, states)]
    calls: list = []

    def recorded(m, x, y, e, **kw):
        calls.append([models.index(m) if m in models else -1, int(len(x))])
        return shift_attack(m, x, y, e)

    matrix = transfer_matrix(models, images, labels, eps, recorded, batch_size=batch_size)
    return {"matrix": torch.as_tensor(matrix).detach(), "calls": calls}
