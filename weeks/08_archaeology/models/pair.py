"""The excavation's two models, loaded the way ``vitcourse.archaeology`` loads them.

    from models.pair import load_pair          # from weeks/08_archaeology/
    vit, cnn = load_pair()                     # SMOKE: the shapes models
    vit, cnn = load_pair("runs/pathmnist-full", dataset="pathmnist")   # the models a FULL run fine-tuned

Each is a ``vitcourse.toolkit.Subject``: ``.pixel`` takes images in [0, 1], ``.raw`` normalised ones.
"""

from __future__ import annotations

from pathlib import Path

from vitcourse.archaeology import Settings, load_finetuned, load_test_data
from vitcourse.toolkit import Subject, shapes_subjects


def load_pair(run: str | Path | None = None, dataset: str = "shapes") -> tuple[Subject, Subject]:
    """(ViT, CNN): the shapes models, or those fine-tuned in ``run`` (its ``stages/models`` folder)."""
    if run is None or dataset == "shapes":
        return shapes_subjects()
    settings = Settings(dataset=dataset)
    classes = load_test_data(settings)["classes"]
    return load_finetuned(Path(run) / "stages" / "models", settings, classes)
