"""The training command (`python -m vitcourse.train`, Week 3) runs on the reference solution: its benchmark mode
on the CPU, early failures when data or weights are missing, and the FULL commands the GPU workflow runs.

It runs in a subprocess with the reference package first on PYTHONPATH (the installed ``vitcourse`` is the
students' stubs), offline, with an empty data folder.
"""

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from vitgrade import weeks


def train_command(*args: str, tmp_path, scale: str = "smoke", timeout: int = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(weeks.SOLUTIONS), str(weeks.GRADING)]),
               VIT_SCALE=scale, VIT_OFFLINE="1", HF_HUB_OFFLINE="1", VIT_DATA_DIR=str(tmp_path / "data"),
               HF_HUB_CACHE=str(tmp_path / "hub"), TORCH_HOME=str(tmp_path / "torch"), OMP_NUM_THREADS="2")
    return subprocess.run([sys.executable, "-m", "vitcourse.train", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_benchmark_runs_the_full_recipe_on_the_cpu(tmp_path):
    """The FULL CIFAR-10 pipeline (RandAugment, crops, flips, Mixup/CutMix, patch-4 ViT, fused-or-not AdamW,
    clipping, the schedule) on random CIFAR-shaped tensors: a few small steps, then images/s."""
    proc = train_command("benchmark", "cifar10-vit", "--batch-size", "8", "--steps", "1", "--warmup", "1",
                         tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(proc.stdout.strip().splitlines()[-2])
    assert result["images_per_s"] > 0 and result["batch_size"] == 8 and result["world_size"] == 1
    assert abs(result["epoch_seconds"] * result["images_per_s"] - 50_000) < 1e-6 * 50_000


def test_cifar10_recipe_stops_before_any_work_without_the_data(tmp_path):
    proc = train_command("fit", "cifar10-vit", tmp_path=tmp_path, scale="full")
    assert proc.returncode != 0
    assert "DataUnavailable" in proc.stderr and "CIFAR-10 is required" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "runs").exists(), "nothing may be written before the data are there"


@pytest.mark.parametrize("library", ["timm", "transformers"])
def test_finetune_stops_before_any_work_without_data_or_weights(tmp_path, library):
    proc = train_command("finetune", "--mode", "full", "--library", library, tmp_path=tmp_path, scale="full")
    assert proc.returncode != 0
    assert ("DataUnavailable" in proc.stderr or "WeightsUnavailable" in proc.stderr), proc.stderr[-2000:]
    assert "To fix" in proc.stderr


def test_gpu_workflow_runs_the_week3_commands():
    """The README's FULL commands are the ones the GPU workflow runs, and they name recipes that exist."""
    recipes = set(re.findall(r'Recipe\("([\w-]+)"', (weeks.SOLUTION_PACKAGE / "train.py").read_text()))
    assert {"digits-vit", "cifar10-vit"} <= recipes
    workflow = yaml.safe_load((weeks.REPO / ".github" / "workflows" / "gpu.yml").read_text())
    runs = [step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"]]
    commands = [line for run in runs for line in run.splitlines() if "vitcourse.train" in line]
    readme = (weeks.REPO / "weeks" / "03_training" / "README.md").read_text()
    for needed in ("fit cifar10-vit", "fit cifar10-cnn", "fit cifar10-deit", "benchmark cifar10-vit",
                   "finetune --mode linear_probe", "finetune --mode full"):
        assert any(needed in c for c in commands), f"gpu.yml does not run `{needed}`"
        assert needed in readme, f"weeks/03_training/README.md does not give `{needed}`"
    for command in commands:
        words = command.split()
        if "fit" in words or "benchmark" in words:
            recipe = words[words.index("fit" if "fit" in words else "benchmark") + 1]
            assert recipe in recipes, f"gpu.yml runs an unknown recipe {recipe!r}"


LOADER_CHECK = """
import torch
from vitcourse.models import ConvNet, load_week3_models, save_week3_models
from vitcourse.vit import VisionTransformer

assert load_week3_models() is None, "nothing saved yet: None"
vit_cfg = dict(img_size=32, patch_size=8, embed_dim=16, depth=1, num_heads=2, num_classes=10)
cnn_cfg = dict(widths=(4, 8), num_classes=10)
vit, cnn = VisionTransformer(**vit_cfg).train(), ConvNet(**cnn_cfg).train()
save_week3_models(vit, vit_cfg, cnn, cnn_cfg, torch.full((3,), 0.2), torch.full((3,), 0.5), tuple("abcdefghij"),
                  "digits", {"vit_test_acc": 0.5})
loaded = load_week3_models()
images = torch.rand(2, 3, 32, 32)
assert not loaded.vit.training and not loaded.cnn.training, "returned in eval mode"
with torch.no_grad():
    assert torch.allclose(loaded.vit(loaded.normalize(images)), vit.eval()(((images - 0.2) / 0.5)))
    assert torch.allclose(loaded.cnn(loaded.normalize(images)), cnn.eval()(((images - 0.2) / 0.5)))
assert loaded.classes == tuple("abcdefghij") and loaded.dataset == "digits"
print("ok")
"""


def test_week3_models_round_trip_for_later_weeks(tmp_path):
    """What Weeks 6 and 7 call: None before the Week 3 notebook ran, then both models in eval mode."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(weeks.SOLUTIONS), str(weeks.GRADING)]),
               VIT_DATA_DIR=str(tmp_path / "data"), VIT_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", LOADER_CHECK], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]
    assert (tmp_path / "data" / "03_training" / "vit.pt").is_file()


CACHE_CHECK = """
import dataclasses, json
from vitcourse.train import RECIPES, fit_cached, load_data

data = load_data("digits", verbose=False)
recipe = dataclasses.replace(RECIPES["digits-cnn"], epochs=1, model=dict(widths=(4, 8), stem_stride=2))
first = fit_cached(recipe, data, "run", progress=False)
again = fit_cached(recipe, data, "run", progress=False)
assert not first.cached and again.cached, (first.cached, again.cached)
assert again.history == json.loads(json.dumps(first.history)) and again.test_acc == first.test_acc
images = data.x_test[:8]
assert (again.model(images) - first.model.eval()(images)).abs().max() < 1e-6, "the trained weights, read back"
other = fit_cached(dataclasses.replace(recipe, lr=recipe.lr / 2), data, "run", progress=False)
assert not other.cached, "another recipe is another run"
rows = open("run/metrics.csv").read().splitlines()
assert rows[0] == "step,tag,value" and rows.count("step,tag,value") == 1, "one run's rows only"
assert fit_cached(dataclasses.replace(recipe, lr=recipe.lr / 2), data, "run", progress=False).cached
import vitcourse.train as train_module

def interrupted(*args, **kwargs):
    raise KeyboardInterrupt("stopped half-way")

train_module.fit = interrupted
try:
    fit_cached(dataclasses.replace(recipe, lr=recipe.lr / 4), data, "run", progress=False)
except KeyboardInterrupt:
    pass
import os
assert sorted(p for p in os.listdir(".") if p != "data") == ["run"], "no training folder is left behind"
assert fit_cached(dataclasses.replace(recipe, lr=recipe.lr / 2), data, "run", progress=False).cached, \
    "a run that fails leaves the earlier run in place"
print("ok")
"""


def test_fit_cached_reads_back_only_the_same_run(tmp_path):
    """The Week 3 notebook trains each recipe once per code version: the same recipe, data, teacher and code are
    read back (weights, history and the original timings); anything else trains again, and replaces the folder's
    run only when it finishes (a student notebook failing on a stub must not wipe the reference's run)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(weeks.SOLUTIONS), str(weeks.GRADING)]), VIT_OFFLINE="1",
               VIT_DATA_DIR=str(tmp_path / "data"), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", CACHE_CHECK], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]


STAND_IN_CHECK = """
import torch
from vitcourse.models import finetune_model

for name, params in (("vit_small_patch16_224.augreg_in21k_ft_in1k", 0.2), ("resnet18", 12.0)):
    model, note = finetune_model(name, 5, 64)  # 64 px: a ViT is built for it, a CNN takes any size
    assert "NOT pretrained" in note, note
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, 5), name
    assert sum(p.numel() for p in model.parameters()) / 1e6 < params, name
print("ok")
"""


def test_smoke_finetune_builds_a_vit_at_the_image_size_and_a_cnn_that_takes_any():
    """``finetune_model`` at SMOKE scale for both families the fine-tuning recipes name: a CNN has no
    ``img_size`` (it used to get one, and timm's ResNet raised TypeError)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(weeks.SOLUTIONS), str(weeks.GRADING)]),
               VIT_SCALE="smoke", VIT_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", STAND_IN_CHECK], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stdout[-1000:] + proc.stderr[-2000:]
