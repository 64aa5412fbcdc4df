"""Week 7's data and models (``vitcourse.data.textured_scenes``, ``raw_digits``, ``vitcourse.models.shipped_model``,
the ``shapes-cnn-matched`` / ``textures-vit`` / ``textures-cnn`` recipes) and the comparison command's FULL path,
on the reference package.

The shipped weights must be what their recipes make (same configuration, same recipe fields, and the very
training settings of ``shapes-vit``: the comparison is fair only then) and still reach their accuracy on the
generated test sets; at FULL scale, offline, ``python -m vitcourse.compare`` must stop before any work and name
what is missing.
"""

import os
import subprocess
import sys

from vitgrade import weeks


def reference_env(tmp_path, scale: str = "smoke") -> dict:
    """The reference package first, offline, empty caches, and a TMPDIR of the test's own (importing timm
    makes two wandb folders there, which the session's TMPDIR must not collect)."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(weeks.SOLUTIONS), str(weeks.GRADING)]), VIT_SCALE=scale,
                VIT_OFFLINE="1", HF_HUB_OFFLINE="1", VIT_DATA_DIR=str(tmp_path / "data"), HF_HOME=str(tmp_path / "hf"),
                TORCH_HOME=str(tmp_path / "torch"), TMPDIR=str(tmp_path / "tmp"))


def run_python(args: list[str], tmp_path, scale: str = "smoke", timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=tmp_path, env=reference_env(tmp_path, scale),
                          capture_output=True, text=True, timeout=timeout)


TEXTURES_CHECK = """
import torch
from vitcourse.data import TEXTURES, make_shape_scenes, make_textured_scenes, raw_digits, textured_scenes

a, b = make_textured_scenes(48, seed=5), make_textured_scenes(48, seed=5)
assert torch.equal(a.images, b.images) and torch.equal(a.textures, b.textures), "deterministic per seed"
plain = make_shape_scenes(48, seed=5)
assert torch.equal(a.labels, plain.labels) and torch.equal(a.masks, plain.masks), "the same scenes as the plain ones"
outside = (plain.masks == 0)[:, None].expand_as(a.images)
assert torch.allclose(a.images[outside], plain.images[outside], atol=1e-6), "only the objects change"
assert torch.equal(a.textures, a.labels), "texture k fills shape k"
c = make_textured_scenes(600, seed=5, conflict=True)
assert bool((c.textures != c.labels).all()), "cue conflict: never the shape's own texture"
counts = torch.bincount((c.textures - c.labels) % 6, minlength=6)
assert counts[0] == 0 and int(counts[1:].min()) > 80, ("the other five textures about equally often", counts)
assert a.images.dtype == torch.float32 and 0 <= float(a.images.min()) and float(a.images.max()) <= 1
assert len(TEXTURES) == 6 and len(textured_scenes("test", n=7)) == 7
sub = c.subset(slice(2, 5))
assert torch.equal(sub.textures, c.textures[2:5]) and bool(sub.conflict.all())
x_train, y_train, x_test, y_test = raw_digits()
assert x_train.shape == (1437, 1, 8, 8) and x_test.shape == (360, 1, 8, 8) and float(x_train.max()) == 1.0
print("ok")
"""


def test_textured_scenes_and_raw_digits(tmp_path):
    proc = run_python(["-c", TEXTURES_CHECK], tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


SHIPPED_CHECK = """
import json
from dataclasses import asdict

import torch
from vitcourse.data import shape_scenes, textured_scenes
from vitcourse.models import shipped_model
from vitcourse.train import RECIPES, SHAPES_MATCHED

base = asdict(RECIPES["shapes-vit"])
for name, test, floor in (("shapes-cnn-matched", shape_scenes("test"), 0.98),
                          ("textures-vit", textured_scenes("test"), 0.97),
                          ("textures-cnn", textured_scenes("test"), 0.98)):
    recipe = RECIPES[name]
    fields = asdict(recipe)
    same = {k: v for k, v in fields.items() if k not in ("name", "dataset", "arch", "model", "init")}
    assert same == {k: v for k, v in base.items() if k in same}, (name, "not the shapes-vit recipe's settings")
    assert all(fields[k] == v for k, v in SHAPES_MATCHED.items())
    loaded = shipped_model(name, verbose=False)
    saved = torch.load(loaded.info["path"], map_location="cpu", weights_only=True)
    assert saved["recipe"] == name and saved["seed"] == 0
    assert saved["config"] == dict(recipe.model, num_classes=6), (saved["config"], recipe.model)
    assert json.loads(saved["recipe_fields"]) == json.loads(json.dumps(fields)), f"{name}: the recipe changed since"
    with torch.no_grad():
        accuracy = float((loaded.model(loaded.normalize(test.images)).argmax(1) == test.labels).float().mean())
    assert accuracy >= floor, (name, accuracy)
    print(name, round(accuracy, 3))
print("ok")
"""


def test_shipped_week7_models_match_their_recipes(tmp_path):
    proc = run_python(["-c", SHIPPED_CHECK], tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stdout[-2000:] + proc.stderr[-3000:]


def test_compare_at_full_scale_stops_early_offline(tmp_path):
    """FULL needs Food-101 and two pretrained timm models; offline it must stop before any work, saying which."""
    proc = run_python(["-m", "vitcourse.compare", "--skip-data-efficiency", "--out", str(tmp_path / "out")],
                      tmp_path, scale="full", timeout=120)
    assert proc.returncode != 0, proc.stdout[-2000:]
    message = proc.stderr[-3000:]
    assert "DataUnavailable" in message and "Food-101" in message, message
    assert not (tmp_path / "out").exists(), "nothing may be written before the data and the weights are there"
    assert "finetune" not in proc.stdout, "no training may start"
