"""The maps of one test scene: the ViT's attention at a block and head, rollout, gradient-weighted attention,
and the CNN's Grad-CAM, side by side in one PNG.

    python analysis/explore.py --index 7 --block 2 --head 3 --out explore.png     # from weeks/08_archaeology/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib.pyplot as plt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # weeks/08_archaeology: models/ is importable

from models.pair import load_pair  # noqa: E402

from vitcourse.data import shape_scenes  # noqa: E402
from vitcourse.toolkit import (  # noqa: E402
    Toolkit,
    attention_stack,
    cls_maps,
    gradcam_maps,
    gradient_maps,
    overlay,
    rollout_maps,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=int, default=0, help="which test scene")
    parser.add_argument("--block", type=int, default=1, help="1 .. L")
    parser.add_argument("--head", type=int, default=1, help="1 .. nH")
    parser.add_argument("--out", type=Path, default=Path("explore.png"))
    args = parser.parse_args(argv)
    kit = Toolkit()
    vit, cnn = load_pair()
    scenes = shape_scenes("test", n=args.index + 1)
    image = scenes.images[args.index:args.index + 1]  # (1, 3, 32, 32)
    _, attention = attention_stack(kit, vit, image)  # (L, 1, nH, T, T)
    maps = {f"block {args.block}, head {args.head}": cls_maps(kit, vit, attention)[args.block - 1, 0, args.head - 1],
            "rollout": rollout_maps(kit, vit, attention)[0], "gradient-weighted": gradient_maps(kit, vit, image)[0],
            "CNN Grad-CAM": gradcam_maps(kit, cnn, image)[0]}
    fig, axes = plt.subplots(1, len(maps) + 1, figsize=(2.2 * (len(maps) + 1), 2.4), layout="constrained")
    axes[0].imshow(image[0].permute(1, 2, 0))
    axes[0].set_title(scenes.classes[int(scenes.labels[args.index])])
    for ax, (title, heat) in zip(axes[1:], maps.items()):
        ax.imshow(overlay(image[0], heat))
        ax.set_title(title, fontsize=8)
    for ax in axes:
        ax.axis("off")
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
