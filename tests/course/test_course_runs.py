"""The course's own SMOKE runs of Week 3 (``data/runs/``): what they claim to be, and what they give.

The reference notebook reads them instead of training for two minutes (``VIT_COURSE_RUNS``, set by
``vitgrade notebooks`` and the course's notebook test). So they are checked here: each was made
with exactly its recipe of ``vitcourse.train.RECIPES``, seed 0 and the digits data this machine
makes (the distilled ViT: with the shipped CNN as teacher); its weights give on the test split the
accuracy its record states, and the Week 3 README states that accuracy; and the command that
makes them (``python -m vitcourse.train course-runs``, with the reference solution) reproduces the
teacher bit for bit here (the two ViTs, 30-60 s of CPU each, are not trained again in CI).
"""

import json
from dataclasses import asdict

import pytest
import torch

from vitgrade import weeks

pytestmark = pytest.mark.slow  # trains the CNN teacher (a few seconds)


@pytest.fixture(scope="module")
def train():
    """The reference package's ``vitcourse.train`` (which made the runs), imported in this process for the
    module's tests; the package this process had imported before (the stubs, from src/) is put back after."""
    import importlib
    import sys

    ours = lambda: [n for n in sys.modules if n == "vitcourse" or n.startswith("vitcourse.")]  # noqa: E731
    saved = {name: sys.modules.pop(name) for name in ours()}
    sys.path.insert(0, str(weeks.SOLUTIONS))
    try:
        module = importlib.import_module("vitcourse.train")
        assert module.__file__.startswith(str(weeks.SOLUTION_PACKAGE)), module.__file__
        yield module
    finally:
        sys.path.remove(str(weeks.SOLUTIONS))
        for name in ours():
            del sys.modules[name]
        sys.modules.update(saved)


@pytest.fixture(scope="module")
def data(train):
    return train.load_data("digits", seed=0, verbose=False)


def _record(train, name):
    return json.loads((train.SHIPPED_RUNS / name / train.RUN_RECORD).read_text())


def test_each_course_run_is_its_recipe_on_this_data(train, data):
    teacher = train.course_run(train.RECIPES["digits-cnn"], data, folder=train.SHIPPED_RUNS / "digits-cnn")
    assert teacher is not None, "data/runs/digits-cnn is not the digits-cnn recipe on this data (seed 0)"
    for name in train.COURSE_RECIPES:
        recipe = train.RECIPES[name]
        record = _record(train, name)
        assert record["recipe_fields"] == json.loads(json.dumps(asdict(recipe))), f"{name}: made with another recipe"
        assert record["seed"] == 0 and len(record["history"]) == recipe.epochs
        run = train.course_run(recipe, data, teacher=teacher.model if recipe.arch == "deit" else None,
                               folder=train.SHIPPED_RUNS / name)
        assert run is not None, f"data/runs/{name} was made for another configuration (recipe, data or teacher)"
        assert run.source == "course" and run.test_acc == record["history"][-1]["test_acc"]


def test_course_runs_give_the_accuracy_they_and_the_readme_state(train, data):
    readme = (weeks.get(3).folder / "README.md").read_text()
    normalise = lambda x: (x.float() / 255 if x.dtype == torch.uint8 else x)  # noqa: E731
    images = (normalise(data.x_test) - data.mean.view(1, -1, 1, 1)) / data.std.view(1, -1, 1, 1)
    for name, label in (("digits-cnn", "the teacher"), ("digits-vit", "the ViT from scratch"),
                        ("digits-deit", "the distilled ViT")):
        recipe = train.RECIPES[name]
        saved = torch.load(train.SHIPPED_RUNS / name / "model.pt", map_location="cpu", weights_only=True)
        model = recipe.build_model(len(data.classes))
        model.load_state_dict(saved["state_dict"])
        with torch.no_grad():
            accuracy = (model.eval()(images).argmax(-1) == data.y_test).float().mean().item()
        stated = _record(train, name)["history"][-1]["test_acc"]
        assert abs(accuracy - stated) < 1e-6, f"{name}: the weights give {accuracy:.4f}, the record says {stated:.4f}"
        assert f"{label} ({stated:.3f})" in readme, f"the Week 3 README does not state {label} ({stated:.3f})"


def test_the_command_reproduces_the_teacher(train, data, tmp_path, monkeypatch):
    """The CPU run is deterministic: the teacher trained again here is the shipped one, bit for bit."""
    monkeypatch.delenv(train.COURSE_RUNS_ENV, raising=False)
    torch.set_num_threads(1)
    again = train.fit(train.RECIPES["digits-cnn"], data, seed=0, progress=False)
    shipped = torch.load(train.SHIPPED_RUNS / "digits-cnn" / "model.pt", map_location="cpu", weights_only=True)
    for key, value in again.model.state_dict().items():
        assert torch.equal(value, shipped["state_dict"][key]), f"digits-cnn trained again differs in {key}"


def test_a_course_run_is_read_only_when_asked_and_only_for_its_configuration(train, data, tmp_path, monkeypatch):
    recipe = train.RECIPES["digits-cnn"]
    monkeypatch.delenv(train.COURSE_RUNS_ENV, raising=False)
    assert train.course_run(recipe, data) is None, "read without VIT_COURSE_RUNS"
    monkeypatch.setenv(train.COURSE_RUNS_ENV, "1")
    other = train.RECIPES["digits-cnn"].__class__(**{**asdict(recipe), "epochs": recipe.epochs - 1})
    assert train.course_run(other, data) is None, "a course run stood in for another recipe"
    result = train.fit_cached(recipe, data, tmp_path / "runs" / recipe.name)
    assert result.source == "course" and "reference solution" in result.how
    copied = sorted(p.name for p in (tmp_path / "runs" / recipe.name).iterdir())
    assert copied == ["metrics.csv", "model.pt", "run.json"], copied
