"""The Week 8 excavation command (``python -m vitcourse.archaeology``), on the reference package.

The whole SMOKE excavation runs end to end in the reference notebook (``test_verify.py`` executes it before
grading it; its last cell asserts that ``check_report`` finds every figure and table). Here: what the command
says first, that it resumes (a stage done with the same settings and code is skipped, ``--redo`` and a changed
setting do it again), that FULL scale offline stops before any work and says why, that an opted-in Weights &
Biases run writes its files into the run's folder and nothing into the temp folder, that the experiment files
are the settings they claim to be, that ``check_report`` notices what a run lacks, and that two excavations
into one folder take turns.
"""

import csv
import json
import os
import subprocess
import sys
from dataclasses import asdict

import pytest

from vitgrade import weeks

EXPERIMENTS = weeks.WEEKS_DIR / "08_archaeology" / "experiments"


def reference_env(tmp_path, **extra: str) -> dict:
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(weeks.SOLUTIONS), str(weeks.GRADING)]), VIT_SCALE="smoke",
               VIT_OFFLINE="1", HF_HUB_OFFLINE="1", TMPDIR=str(tmp_path / "tmp"), OMP_NUM_THREADS="1",
               MPLBACKEND="Agg", TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "inductor"))
    env.update(extra)
    return env


RESUME = """
import sys
from vitcourse.archaeology import main
out = sys.argv[1]
for argv in (["--stages", "models,attention"], ["--stages", "models,attention"],
             ["--stages", "models,attention", "--redo", "models"], ["--stages", "models", "--config", sys.argv[2]],
             ["--stages", "models", "--wandb"]):
    print("=== run", " ".join(argv), flush=True)
    assert main(["--out", out, "--no-progress", *argv]) == 0
"""


@pytest.mark.slow
def test_the_command_states_its_scale_resumes_and_logs_to_wandb_when_asked(tmp_path):
    out = tmp_path / "run"
    config = tmp_path / "seed1.toml"
    config.write_text('dataset = "shapes"\nseed = 1\n')
    proc = subprocess.run([sys.executable, "-c", RESUME, str(out), str(config)], cwd=tmp_path,
                          env=reference_env(tmp_path, WANDB_MODE="offline"), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = proc.stdout.split("=== run")[1:]
    first = runs[0].splitlines()[1:]
    assert first[0].startswith("Attention Archaeology · Scale: SMOKE · dataset: shapes"), first[0]
    assert first[1].startswith("Data: the Week 6 shape scenes") and first[2].startswith("Models:")
    assert any(line.startswith("  Task 6.1 attention at every layer and head") for line in first)
    assert any(line.startswith("Tracking: TensorBoard") for line in first)
    assert "[models] " in runs[0] and "[attention] " in runs[0] and "] done before" not in runs[0]
    assert "Report check: the summary stage did not run" in runs[0]
    assert "[models] done before" in runs[1] and "[attention] done before" in runs[1], runs[1]
    assert "[attention] done before" in runs[2] and "[models] done before" not in runs[2], runs[2]
    assert "other settings or other code" in runs[3] and "[models] done before" not in runs[3], runs[3]
    for name in ("attention_progression", "heads_gallery", "attention_by_layer"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 5_000
    assert {p.name for p in (out / "tables").iterdir()} >= {"attention_by_layer.csv", "attention_by_layer.md"}
    assert any((out / "tensorboard").iterdir()), "TensorBoard is always on"
    # The opted-in run (WANDB_MODE=offline): its files in <out>/wandb, nothing in the temp folder.
    offline = list((out / "wandb").rglob("offline-run-*"))
    assert offline and list(offline[0].glob("*.wandb")), sorted(p.name for p in (out / "wandb").rglob("*"))[:20]
    assert not list((tmp_path / "tmp").iterdir()), list((tmp_path / "tmp").iterdir())


def test_full_scale_offline_stops_before_any_work(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "vitcourse.archaeology", "--dataset", "pathmnist", "--out", str(out)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=reference_env(tmp_path, VIT_SCALE="full", VIT_DATA_DIR=str(tmp_path / "data")))
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stdout.splitlines()[0].startswith("Attention Archaeology · Scale: FULL · dataset: pathmnist")
    assert "Stopped before any work" in proc.stderr and "pathmnist" in proc.stderr, proc.stderr[-2000:]
    assert not out.exists(), "nothing is written before the data and the weights are there"


def test_experiment_files_are_the_settings_they_claim(monkeypatch):
    monkeypatch.syspath_prepend(str(weeks.SOLUTIONS))
    from vitcourse.archaeology import Settings, load_config

    smoke = load_config(EXPERIMENTS / "shapes-smoke.toml")
    defaults = asdict(Settings())
    assert {k: defaults[k] for k in smoke} == smoke, "shapes-smoke.toml is the SMOKE default, key for key"
    for name in ("pathmnist-full.toml", "eurosat-full.toml"):
        full = load_config(EXPERIMENTS / name)
        assert full["dataset"] == name.split("-")[0] and full["image_size"] == 224
        assert full["vit_model"].startswith("vit_base_patch16_224") and full["cnn_model"].startswith("resnet50")
    bad = EXPERIMENTS.parent / "bad.toml"
    try:
        bad.write_text("panel = 3\n")
        with pytest.raises(SystemExit, match="unknown settings"):
            load_config(bad)
    finally:
        bad.unlink()


def test_check_report_names_what_a_run_lacks(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(weeks.SOLUTIONS))
    from vitcourse.archaeology import REQUIRED_FIGURES, REQUIRED_TABLES, check_report

    assert check_report(tmp_path) == [f"{tmp_path / 'summary.json'} is missing: run the excavation "
                                      f"(python -m vitcourse.archaeology --out {tmp_path})"]
    (tmp_path / "figures").mkdir()
    (tmp_path / "tables").mkdir()
    for name in REQUIRED_FIGURES:
        (tmp_path / "figures" / f"{name}.png").write_bytes(b"png")
    for name in REQUIRED_TABLES:
        (tmp_path / "tables" / f"{name}.csv").write_text("x\n")
    summary = {"figures": {n: [f"figures/{n}.png"] for n in REQUIRED_FIGURES},
               "tables": {n: f"tables/{n}.csv" for n in REQUIRED_TABLES},
               "stages": {"attention": {"numbers": {"blocks": 2, "heads": 2}}}, "missing_stages": []}
    (tmp_path / "summary.json").write_text(json.dumps(summary))

    def write(name, rows):
        with open(tmp_path / "tables" / f"{name}.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    write("head_ranking", [{"block": b, "head": h} for b, h in ((1, 1), (1, 2), (2, 1), (2, 2))])
    write("taxonomy", [{"group": g} for g in ("only the ViT wrong", "only the CNN wrong", "both wrong", "both right")])
    assert check_report(tmp_path) == []
    write("head_ranking", [{"block": b, "head": h} for b, h in ((1, 1), (1, 2), (2, 1), (2, 1))])
    write("taxonomy", [{"group": g} for g in ("only the ViT wrong", "both wrong")])
    (tmp_path / "figures" / "robustness_curves.png").unlink()
    problems = check_report(tmp_path)
    assert "figure robustness_curves is missing" in problems
    assert any("head ranking lists 4 heads (3 different); the ViT has 4" in p for p in problems), problems
    assert any("only the CNN wrong" in p for p in problems), problems


def test_two_excavations_into_one_folder_take_turns(tmp_path, monkeypatch):
    """The reference notebook runs its excavation in runs/shapes-smoke-reference both in its own test and
    in `vitgrade verify 8` (which grades Task 8.3 on its outputs), perhaps at the same time: the second waits
    for the first's lock on the folder, then resumes (every stage done before)."""
    import threading

    monkeypatch.syspath_prepend(str(weeks.SOLUTIONS))
    from vitcourse.archaeology import one_at_a_time

    said, order = [], []

    def second():
        with one_at_a_time(tmp_path, said.append):
            order.append("second")

    with one_at_a_time(tmp_path, said.append):
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(1.0)
        assert thread.is_alive(), "the second excavation waits while the first holds the folder"
        order.append("first")
    thread.join(10)
    assert order == ["first", "second"]
    assert said == [f"Another excavation is writing {tmp_path}; waiting for it to finish, then resuming."]
