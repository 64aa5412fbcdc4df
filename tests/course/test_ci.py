"""CI wiring: `.ci/run`, the README and the workflows name the same test command.

actionlint cannot be installed here (no wheel for this platform), so the workflows are at least
parsed and checked for the commands and the scale switch they must carry.
"""

import yaml

from vitgrade import weeks

TEST_COMMAND = "python3 course.py test"


def test_ci_runs_the_readme_test_command():
    assert TEST_COMMAND in (weeks.REPO / ".ci" / "run").read_text()
    assert TEST_COMMAND in (weeks.REPO / "README.md").read_text()


def _workflow(name: str) -> dict:
    data = yaml.safe_load((weeks.REPO / ".github" / "workflows" / name).read_text())
    assert set(data) >= {"name", "jobs"} and data["jobs"], f"{name}: no jobs"
    return data


def test_cpu_workflow_runs_the_same_command_at_smoke_scale():
    data = _workflow("cpu.yml")
    (job,) = data["jobs"].values()
    assert job["env"]["VIT_SCALE"] == "smoke"
    assert any(step.get("run") == TEST_COMMAND for step in job["steps"])


def test_gpu_workflow_runs_the_notebooks_at_full_scale():
    data = _workflow("gpu.yml")
    (job,) = data["jobs"].values()
    assert "self-hosted" in job["runs-on"] and job["env"]["VIT_SCALE"] == "full"
    assert any("vitgrade notebooks" in step.get("run", "") for step in job["steps"])
