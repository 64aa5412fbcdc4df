"""The Attention Archaeology demo: a Gradio app, offline, on the course's SMOKE models.

    python3 course.py demo                 # http://127.0.0.1:7860 (another free port if that one is taken)
    python3 course.py demo --port 8000

Pick a bundled shape scene or upload an image (it is cropped to a square and resized to 32 x 32, the models'
size). The app shows the ViT's attention at any block and head, attention rollout, gradient-weighted attention
and the CNN's Grad-CAM side by side, and both models' predictions. Move the epsilon slider: each model is
attacked (FGSM or PGD, white box, L-infinity budget epsilon / 255) and every map and prediction is drawn for
the attacked image.

The pieces are the ones :mod:`vitcourse.toolkit` chooses: yours when your task is done, else the course's
reference where this copy of the course has it; the page says which. Everything is computed on the CPU, in
well under a second for one image (the status line gives the time; ``tests/course/test_demo.py`` measures
it). No network: Gradio's analytics are off, nothing is shared.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no version check, no telemetry: offline
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from vitcourse.toolkit import (  # noqa: E402 - after the environment above
    Subject,
    Toolkit,
    attention_stack,
    cls_maps,
    gradcam_maps,
    gradient_maps,
    overlay,
    rollout_maps,
    shapes_subjects,
)

DISPLAY = 224  # pixels on screen for a 32 x 32 image
BUNDLED = 12  # shape scenes offered in the dropdown (two of each class)
ATTACKS = ("FGSM", "PGD")


class Archaeologist:
    """Everything the app computes, without Gradio: ``analyse(image, block, head, eps, attack)``."""

    def __init__(self, kit: Toolkit | None = None) -> None:
        from vitcourse.data import shape_scenes

        self.kit = kit or Toolkit()
        self.vit, self.cnn = shapes_subjects()
        self.classes = self.vit.classes
        self.size = 32
        scenes = shape_scenes("test")
        picks = [int(i) for k in range(len(scenes.classes)) for i in torch.nonzero(scenes.labels == k).flatten()[:2]]
        self.bundled = {f"{n + 1:02d} · {scenes.classes[int(scenes.labels[i])]} (test scene {i})": scenes.images[i]
                        for n, i in enumerate(picks[:BUNDLED])}
        self.depth = len(self.vit.raw.blocks)
        self.heads = self.vit.raw.blocks[0].attn.num_heads

    def code_line(self) -> str:
        pieces = ("attention_maps", "attention_rollout", "gradient_weighted_attention", "GradCAM", "fgsm", "pgd")
        parts = []
        for name in pieces:
            choice = self.kit.choice(name)
            whose = "yours, not done yet" if "not done" in choice.detail else choice.source
            parts.append(f"{choice.piece.what} (Task {choice.piece.task}): **{whose}**")
        return "Code: " + "; ".join(parts) + "."

    def to_tensor(self, image: Any) -> torch.Tensor:
        """An uploaded image (H, W, 3 or 4) uint8/float, any size -> (1, 3, 32, 32) in [0, 1]."""
        array = np.asarray(image)
        if array.ndim == 2:
            array = np.repeat(array[..., None], 3, axis=-1)
        array = array[..., :3]
        x = torch.as_tensor(array.astype(np.float32) / (255.0 if array.dtype == np.uint8 or array.max() > 1 else 1.0))
        x = x.permute(2, 0, 1)[None]  # (1, 3, H, W)
        side = min(x.shape[-2:])
        top, left = (x.shape[-2] - side) // 2, (x.shape[-1] - side) // 2
        x = x[..., top:top + side, left:left + side]  # the centre square
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True,
                             align_corners=False).clamp(0, 1)

    def attack(self, subject: Subject, x: torch.Tensor, eps: float, attack: str) -> torch.Tensor:
        """The image attacked against ``subject``'s own prediction on it (no label is needed)."""
        if eps <= 0:
            return x
        with torch.no_grad():
            target = subject.pixel(x).argmax(dim=1)
        if attack == "PGD":
            generator = torch.Generator().manual_seed(0)
            return self.kit("pgd")(subject.pixel, x, target, eps, steps=10, generator=generator)
        return self.kit("fgsm")(subject.pixel, x, target, eps)

    @staticmethod
    def picture(rgb: torch.Tensor) -> np.ndarray:
        """(H, W, 3) in [0, 1] -> (DISPLAY, DISPLAY, 3) uint8, nearest-neighbour so the pixels stay sharp."""
        big = F.interpolate(rgb.permute(2, 0, 1)[None], size=(DISPLAY, DISPLAY), mode="nearest")[0]
        return (big.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)

    def labels(self, subject: Subject, x: torch.Tensor) -> dict[str, float]:
        with torch.no_grad():
            probabilities = subject.pixel(x).softmax(dim=-1)[0]
        return {name: float(p) for name, p in zip(self.classes, probabilities)}

    def analyse(self, image: Any, block: int, head: int | str, eps: float, attack: str) -> tuple:
        """(ViT input, ViT attention at block/head, rollout, gradient-weighted, CNN input, CNN Grad-CAM, ViT
        label, CNN label, a status line). ``block`` and ``head`` count from 1; head "mean" averages the heads;
        ``eps`` is in 1/255 units."""
        tick = time.perf_counter()
        if image is None:
            raise ValueError("no image: pick a bundled scene or upload one")
        x = image if isinstance(image, torch.Tensor) else self.to_tensor(image)
        height, width = (image.shape[-2:] if isinstance(image, torch.Tensor) else np.asarray(image).shape[:2])
        budget = float(eps) / 255
        block = min(max(int(block), 1), self.depth)
        x_vit = self.attack(self.vit, x, budget, attack)
        x_cnn = self.attack(self.cnn, x, budget, attack)
        _, attention = attention_stack(self.kit, self.vit, x_vit)
        per_head = cls_maps(self.kit, self.vit, attention)[block - 1, 0]  # (nH, h, w)
        one = per_head.mean(dim=0) if str(head) == "mean" else per_head[min(max(int(head), 1), self.heads) - 1]
        pictures = [
            self.picture(x_vit[0].permute(1, 2, 0)),
            self.picture(overlay(x_vit[0], one)),
            self.picture(overlay(x_vit[0], rollout_maps(self.kit, self.vit, attention)[0])),
            self.picture(overlay(x_vit[0], gradient_maps(self.kit, self.vit, x_vit)[0])),
            self.picture(x_cnn[0].permute(1, 2, 0)),
            self.picture(overlay(x_cnn[0], gradcam_maps(self.kit, self.cnn, x_cnn)[0])),
        ]
        vit_label, cnn_label = self.labels(self.vit, x_vit), self.labels(self.cnn, x_cnn)
        seconds = time.perf_counter() - tick
        status = (f"Image {height} x {width} px (the models see 32 x 32). {attack} at epsilon {float(eps):g}/255 "
                  f"(each model attacked white-box against its own clean prediction); block {block}, head {head}; "
                  f"computed in {seconds:.2f} s on the CPU.")
        return (*pictures, vit_label, cnn_label, status)


def build(archaeologist: Archaeologist | None = None):
    """The Gradio Blocks app (not launched)."""
    import gradio as gr

    arch = archaeologist or Archaeologist()
    first = next(iter(arch.bundled))
    picture = lambda name: (arch.bundled[name].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    with gr.Blocks(title="Attention Archaeology") as app:
        gr.Markdown("# Attention Archaeology\nA ViT and a CNN trained on the course's shape scenes (SMOKE models). "
                    "Pick a scene or upload an image; move epsilon to attack both models.")
        gr.Markdown(arch.code_line(), elem_id="code")
        with gr.Row():
            with gr.Column(scale=1):
                bundled = gr.Dropdown(list(arch.bundled), value=first, label="bundled scene", elem_id="bundled")
                image = gr.Image(value=picture(first), type="numpy", label="image (resized to 32 x 32)",
                                 elem_id="image", format="png", height=DISPLAY)
                block = gr.Slider(1, arch.depth, value=arch.depth, step=1, label="ViT block", elem_id="block")
                head = gr.Dropdown(["mean", *[str(h) for h in range(1, arch.heads + 1)]], value="mean",
                                   label="ViT head", elem_id="head")
                eps = gr.Slider(0, 16, value=0, step=1, label="epsilon (x/255)", elem_id="eps")
                attack = gr.Radio(list(ATTACKS), value="PGD", label="attack", elem_id="attack")
            with gr.Column(scale=3):
                with gr.Row():
                    vit_in = gr.Image(label="ViT sees", elem_id="vit_input", format="png", height=DISPLAY)
                    attention = gr.Image(label="ViT attention (block, head)", elem_id="attention", format="png",
                                         height=DISPLAY)
                    rollout = gr.Image(label="ViT rollout", elem_id="rollout", format="png", height=DISPLAY)
                    gradient = gr.Image(label="ViT gradient-weighted", elem_id="gradient", format="png", height=DISPLAY)
                with gr.Row():
                    cnn_in = gr.Image(label="CNN sees", elem_id="cnn_input", format="png", height=DISPLAY)
                    gradcam = gr.Image(label="CNN Grad-CAM", elem_id="gradcam", format="png", height=DISPLAY)
                    vit_label = gr.Label(num_top_classes=3, label="ViT prediction", elem_id="vit_label")
                    cnn_label = gr.Label(num_top_classes=3, label="CNN prediction", elem_id="cnn_label")
                status = gr.Markdown(elem_id="status")
        inputs = [image, block, head, eps, attack]
        outputs = [vit_in, attention, rollout, gradient, cnn_in, gradcam, vit_label, cnn_label, status]
        bundled.change(picture, bundled, image, api_name=False)
        for control in (image, block, head, eps, attack):
            control.change(arch.analyse, inputs, outputs, api_name=False, trigger_mode="always_last")
        gr.Button("Explain", elem_id="run").click(arch.analyse, inputs, outputs, api_name="analyse")
        app.load(arch.analyse, inputs, outputs, api_name=False)
    return app


def free_port(preferred: int = 7860) -> int:
    """``preferred`` when it is free, else one the system picks (Gradio 6 refuses server_port=0)."""
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
                return sock.getsockname()[1]
            except OSError:
                continue
    raise RuntimeError("no free port")


def launch(port: int | None = None, block: bool = True, archaeologist: Archaeologist | None = None):
    """Start the app on 127.0.0.1 (never shared); returns (app, url). ``block=False`` returns at once."""
    from vitcourse.data import cache_dir

    os.environ.setdefault("GRADIO_TEMP_DIR", str(cache_dir() / "gradio"))  # uploads stay in the course's cache
    app = build(archaeologist)
    port = free_port(port or 7860)
    _, url, _ = app.launch(server_name="127.0.0.1", server_port=port, share=False, prevent_thread_lock=not block,
                           quiet=True, ssr_mode=False, footer_links=[])
    return app, url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 course.py demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=7860, help="the port (another free one if it is taken)")
    args = parser.parse_args(argv)
    arch = Archaeologist()
    print(arch.vit.note)
    print(arch.cnn.note)
    print(arch.code_line().replace("**", ""))
    port = free_port(args.port)
    print(f"Attention Archaeology demo: http://127.0.0.1:{port} (Ctrl+C stops it)", flush=True)
    launch(port, block=True, archaeologist=arch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
