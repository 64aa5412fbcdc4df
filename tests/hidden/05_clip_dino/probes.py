"""Week 5 probes: run in the sandboxed worker, next to the student's vitcourse package.

They build what cannot cross the process boundary (a text encoder, a model, a DataLoader), call
the student's function and return what came out, as it came out: the tensors the student's code
returned and the ones the probe's own model produced inside each call, with their dtype, graph and
device recorded by the wire. The tests decide. The student's package is imported inside each
function, never at module level (this module is loaded before it).
"""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def clip_loss_grads(image: torch.Tensor, text: torch.Tensor, temperature: float) -> dict:
    """The student's clip_loss and its gradients w.r.t. both feature tensors and the temperature."""
    from vitcourse.contrastive import clip_loss

    image = image.clone().requires_grad_(True)
    text = text.clone().requires_grad_(True)
    temp = torch.tensor(float(temperature), requires_grad=True)
    loss = clip_loss(image, text, temp)
    loss.backward()
    none = torch.zeros(0)
    return {"loss": loss.detach(), "image": image.grad if image.grad is not None else none,
            "text": text.grad if text.grad is not None else none,
            "temperature": temp.grad if temp.grad is not None else none}


def zero_shot_weights(table: dict, classnames: list, templates: list) -> dict:
    """The student's zero_shot_weights with a text encoder that looks each prompt up in ``table``
    (prompt -> (E,) embedding) and multiplies by a gain that requires grad (so a graph shows)."""
    from vitcourse.zeroshot import zero_shot_weights as student_weights

    gain = torch.ones((), requires_grad=True)
    encoded = []

    def encode_text(texts):
        texts = list(texts)
        missing = [t for t in texts if t not in table]
        if missing:
            raise KeyError(f"encode_text was asked for prompts that are not template.format(classname): {missing[:3]}")
        out = torch.stack([table[t] for t in texts]) * gain  # (n, E): a graph through gain when grad is on
        encoded.append(out)
        return out

    weights = student_weights(encode_text, tuple(classnames), tuple(templates))
    return {"weights": weights, "encoded": encoded}


class _Recorder(nn.Module):
    """features = flatten(images) * scale, through a dropout that only acts in training mode (so the
    values say which mode it ran in); ``encode`` gives 2 x those features. Every output is kept as it
    was produced (its graph, if grad was on, travels with it as a fact)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.drop = nn.Dropout(0.5)
        self.outputs: list[torch.Tensor] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.drop(images.flatten(1)) * self.scale  # (b, C*H*W)
        self.outputs.append(out)
        return out

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return 2 * self(images)


class _NoParameters(nn.Module):
    """features = flatten(images), no parameters at all (a fixed feature map, e.g. raw pixels)."""

    def __init__(self) -> None:
        super().__init__()
        self.outputs: list[torch.Tensor] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = images.flatten(1)
        self.outputs.append(out)
        return out


def extract_features(images: torch.Tensor, labels: torch.Tensor, batch_size: int, shuffle: bool,
                     use_embed: bool = False, start_in_train_mode: bool = True, image_dtype: str = "float32",
                     label_dtype: str = "int64", parameterless: bool = False) -> dict:
    """The student's extract_features over a DataLoader of (images, labels) in the given dtypes, with the
    recorder model (or one without parameters); what it returned and every output the model produced."""
    from vitcourse.features import extract_features as student_extract

    model = _NoParameters() if parameterless else _Recorder().train(start_in_train_mode)
    generator = torch.Generator().manual_seed(123)
    dataset = TensorDataset(images.to(getattr(torch, image_dtype)), labels.to(getattr(torch, label_dtype)))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)
    features, out_labels = student_extract(model, loader, embed=model.encode if use_embed else None, progress=False)
    return {"features": features, "labels": out_labels, "outputs": model.outputs}


def call_without_grad(target: str, args: list, kwargs: dict | None = None):
    """``vitcourse.<target>(*args, **kwargs)`` called inside ``torch.no_grad()``, as a caller extracting
    frozen features might; what it returned."""
    import importlib

    module, _, name = target.rpartition(".")
    func = getattr(importlib.import_module(f"vitcourse.{module}"), name)
    with torch.no_grad():
        return func(*args, **(kwargs or {}))
