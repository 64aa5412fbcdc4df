"""Week 5 probes: run in the sandboxed worker, next to the student's vitcourse package.

They build what cannot cross the process boundary (a text encoder, a model, a DataLoader), call
the student's function and return tensors and flags. The tests decide.
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
    calls = []

    def encode_text(texts):
        texts = list(texts)
        missing = [t for t in texts if t not in table]
        if missing:
            raise KeyError(f"encode_text was asked for prompts that are not template.format(classname): {missing[:3]}")
        calls.append({"n": len(texts), "grad_enabled": torch.is_grad_enabled()})
        return torch.stack([table[t] for t in texts]) * gain  # (n, E)

    weights = student_weights(encode_text, tuple(classnames), tuple(templates))
    return {"weights": weights.detach(), "requires_grad": bool(weights.requires_grad),
            "grad_enabled_in_calls": [c["grad_enabled"] for c in calls]}


class _Recorder(nn.Module):
    """features = flatten(images) * scale, through a dropout that only acts in training mode;
    ``encode`` gives 2 x those features. Every call records the mode and whether grad is on."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.drop = nn.Dropout(0.5)
        self.seen: list[dict] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.seen.append({"training": self.training, "grad_enabled": torch.is_grad_enabled(), "batch": len(images)})
        return self.drop(images.flatten(1)) * self.scale  # (b, C*H*W)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return 2 * self(images)


def extract_features(images: torch.Tensor, labels: torch.Tensor, batch_size: int, shuffle: bool,
                     use_embed: bool = False, start_in_train_mode: bool = True) -> dict:
    """The student's extract_features over a DataLoader of (images, labels), with the recorder model."""
    from vitcourse.features import extract_features as student_extract

    model = _Recorder().train(start_in_train_mode)
    generator = torch.Generator().manual_seed(123)
    loader = DataLoader(TensorDataset(images, labels), batch_size=batch_size, shuffle=shuffle, generator=generator)
    features, out_labels = student_extract(model, loader, embed=model.encode if use_embed else None, progress=False)
    return {"features": features.detach(), "labels": out_labels, "features_requires_grad": bool(features.requires_grad),
            "features_dtype": str(features.dtype), "labels_dtype": str(out_labels.dtype),
            "features_device": str(features.device), "seen": model.seen}
