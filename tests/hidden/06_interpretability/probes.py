"""Week 6 probes: run in the sandboxed worker, next to the student's vitcourse package.

They build the models a test needs (the course's Week 2 ViT, whose reference version the grader
overlays, or a timm ViT), load the weights the test sends, call the student's code and return raw
facts: tensors, logits before and after, hook counts, flag values, parameters. The tests, in the
grader's process, compare them with their own computation. Nothing here imports vitcourse at module
level: the student's package is imported inside each probe.
"""

import torch
from torch import nn


# ---------------------------------------------------------------- models
def build_vit(kind: str, config: dict, state: dict, fused=None, train: bool = False) -> nn.Module:
    """The course's VisionTransformer ("course") or timm's ("timm") with ``config``, ``state`` loaded strictly.
    ``fused``: per block, the timm ``fused_attn`` flag to start with (None: timm's default)."""
    if kind == "course":
        from vitcourse.vit import VisionTransformer
    else:
        from timm.models.vision_transformer import VisionTransformer
    model = VisionTransformer(**config)
    model.load_state_dict(state, strict=True)
    if fused is not None:
        for block, flag in zip(model.blocks, fused):
            block.attn.fused_attn = bool(flag)
    return model.train(train)


def hook_count(model: nn.Module) -> int:
    """Every forward/backward hook and pre-hook registered on any module of ``model``."""
    names = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    return sum(len(getattr(m, n, {})) for m in model.modules() for n in names)


def fused_flags(model: nn.Module) -> list:
    return [getattr(b.attn, "fused_attn", None) for b in model.blocks]


def snapshot(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ---------------------------------------------------------------- Task 6.1
def record(kind: str, config: dict, state: dict, images: torch.Tensor, fused=None, detach: bool = True,
           passes: int = 1, raise_inside: bool = False) -> dict:
    """The student's AttentionRecorder around ``passes`` forward passes (the last one on images[:2] when
    passes > 1); optionally raise inside the with-block. Returns what was recorded and the model's state
    (hooks, flags, logits) before, inside and after."""
    from vitcourse.attention_maps import AttentionRecorder

    model = build_vit(kind, config, state, fused)
    with torch.no_grad():
        before = model(images)
    facts = {"hooks_before": hook_count(model), "flags_before": fused_flags(model), "logits_before": before}
    error = ""
    recorder = AttentionRecorder(model, detach=detach)
    try:
        with torch.enable_grad(), recorder:  # a graph to keep or to detach
            inside = None
            for i in range(passes):
                batch = images if i < passes - 1 or passes == 1 else images[:2]
                inside = model(batch)
            facts["flags_inside"] = fused_flags(model)
            if raise_inside:
                raise RuntimeError("raised inside the with-block on purpose")
    except RuntimeError as exc:
        error = str(exc)
    with torch.no_grad():
        after = model(images)
    weights = list(recorder.weights)  # as recorded: whether they hold a graph travels with them (tensor_meta)
    facts.update(error=error, logits_inside=inside.detach(), logits_after=after, hooks_after=hook_count(model),
                 flags_after=fused_flags(model), count=len(weights), weights=weights, state_after=snapshot(model))
    return facts


def record_unknown_model() -> dict:
    """Enter the recorder on a model with no ViT blocks; what was raised."""
    from vitcourse.attention_maps import AttentionRecorder

    model = nn.Sequential(nn.Linear(4, 4))
    try:
        with AttentionRecorder(model):
            model(torch.zeros(1, 4))
    except Exception as exc:  # noqa: BLE001 - the test decides what should have been raised
        return {"raised": type(exc).__name__, "message": str(exc), "hooks_after": hook_count(model)}
    return {"raised": "", "message": "", "hooks_after": hook_count(model)}


# ---------------------------------------------------------------- Task 6.2
def rollouts(attention: torch.Tensor, cases: list) -> list:
    """attention_rollout(attention, fusion, residual, discard) for each (fusion, residual, discard) case."""
    from vitcourse.rollout import attention_rollout

    return [attention_rollout(attention, head_fusion=f, residual=r, discard_ratio=d) for f, r, d in cases]


# ---------------------------------------------------------------- Task 6.3
class _CourseRecorder:
    """The course's recorder (timm models), put in place of the student's so that a Task 6.1 bug is not
    paid for again in Task 6.3: fused attention off, attn_drop's output kept with its graph."""

    def __init__(self, model: nn.Module, detach: bool = True) -> None:
        self.model, self.detach, self.weights, self.handles, self.flags = model, detach, [], [], []

    def __enter__(self):
        def start(module, args):
            self.weights = []

        self.handles.append(self.model.register_forward_pre_hook(start))
        for block in self.model.blocks:
            self.flags.append((block.attn, block.attn.fused_attn))
            block.attn.fused_attn = False
            self.handles.append(block.attn.attn_drop.register_forward_hook(
                lambda m, a, out: self.weights.append(out.detach() if self.detach else out)))
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()
        for attn, flag in self.flags:
            attn.fused_attn = flag

    def stacked(self):
        return torch.stack(self.weights)


def gradient_relevance(config: dict, state: dict, images: torch.Tensor, targets: list) -> dict:
    """The student's gradient_weighted_attention on a timm ViT for each target (None, an int, a list ->
    a tensor), with the course's recorder; the relevance, logits, and which parameters got a .grad."""
    import vitcourse.gradient_attention as module

    module.AttentionRecorder = _CourseRecorder
    model = build_vit("timm", config, state)
    out = {"relevance": [], "logits": []}
    for target in targets:
        if isinstance(target, list):
            target = torch.tensor(target, dtype=torch.long)
        relevance, logits = module.gradient_weighted_attention(model, images, target)
        out["relevance"].append(relevance)  # as returned: a graph would show in tensor_meta
        out["logits"].append(logits)
    out["params_with_grad"] = [n for n, p in model.named_parameters() if p.grad is not None]
    out["hooks_after"] = hook_count(model)
    return out


# ---------------------------------------------------------------- Task 6.5
def ablate(kind: str, config: dict, state: dict, images: torch.Tensor, heads: list) -> dict:
    """Logits under the student's HeadAblation(heads), and after it."""
    from vitcourse.ablation import HeadAblation

    model = build_vit(kind, config, state)
    with torch.no_grad():
        with HeadAblation(model, [tuple(h) for h in heads]):
            ablated = model(images)
        after = model(images)
    return {"ablated": ablated, "after": after, "hooks_after": hook_count(model)}


def importance(kind: str, config: dict, state: dict, images: torch.Tensor, labels: torch.Tensor,
               train: bool = False) -> dict:
    """The student's head_importance, and the model afterwards (mode, hooks, parameters)."""
    from vitcourse.ablation import head_importance

    model = build_vit(kind, config, state, train=train)
    result = head_importance(model, images, labels, progress=False)
    result = dict(result, ranking=[list(map(int, pair)) for pair in result["ranking"]])
    return {"result": result, "training_after": model.training, "hooks_after": hook_count(model),
            "state_after": snapshot(model)}


# ---------------------------------------------------------------- Task 6.6
class OnePatch(nn.Module):
    """A classifier that looks at one patch only: logit 1 - logit 0 = w * (mean of channel 0 over the patch
    at (row, col) - 0.5). It is sure where the evidence is, so a map of that patch is the faithful one."""

    def __init__(self, row: int, col: int, patch_size: int, w: float = 20.0) -> None:
        super().__init__()
        self.row, self.col, self.p, self.w = row, col, patch_size, w

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        p = self.p
        patch = images[:, 0, self.row * p:(self.row + 1) * p, self.col * p:(self.col + 1) * p]
        score = self.w * (patch.mean(dim=(1, 2)) - 0.5)  # (B,)
        return torch.stack([torch.zeros_like(score), score], dim=1)  # (B, 2)


def deletion(images: torch.Tensor, labels: torch.Tensor, maps: list, patch_size: int, row: int, col: int,
             steps: list, baseline) -> dict:
    """The student's deletion_curve of the one-patch model for each map."""
    from vitcourse.faithfulness import deletion_curve

    model = OnePatch(row, col, patch_size)
    curves = [deletion_curve(model, images, labels, relevance, patch_size, steps=steps, baseline=baseline)
              for relevance in maps]
    return {"ks": [k for k, _ in curves], "accuracy": [a for _, a in curves]}
