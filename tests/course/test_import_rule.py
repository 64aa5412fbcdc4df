"""No delegation to the reference: each week's import rule, in the judge and in the student's process.

Week 4's exercise modules may import torch, numpy, the standard library and vitcourse. A
submission whose window functions call timm's own would pass every parity test with timm, so:
the judge scores the tasks whose code imports it 0 with the rule in words
(:mod:`vitgrade.judging.imports`); the student's process has no timm in memory (its worker template
never imported it) and none on its disk (the view holds an allow-list of installed packages); and an
import of it from the student's package fails with the same rule.
"""

import textwrap

import pytest

from vitgrade import weeks
from vitgrade.confine import isolate
from vitgrade.confine.sandbox import Sandbox, StudentFailure
from vitgrade.confine.zygote import Zygote
from vitgrade.judging.imports import refused_tasks

WEEK4 = weeks.get(4)


def sources(**files: str) -> dict[str, bytes]:
    return {name.replace("__", "/") + ".py": textwrap.dedent(text).encode() for name, text in files.items()}


def reference(module: str) -> str:
    return (weeks.SOLUTION_PACKAGE / module).read_text()


def test_a_module_level_import_costs_every_task_of_the_module():
    text = reference("swin.py").replace("import torch\n", "import torch\nimport timm\n", 1)
    refused = refused_tasks(WEEK4, sources(swin=text))
    assert set(refused) == {t.id for t in WEEK4.tasks}
    assert "swin.py:" in refused["4.1"] and "imports timm" in refused["4.1"] and "Week 4" in refused["4.1"]


def test_an_import_inside_a_function_costs_that_function_s_task_only():
    text = reference("swin.py").replace(
        '    """Cut feature maps into non-overlapping windows.',
        '    from timm.models.swin_transformer import window_partition as _wp  # noqa\n'
        '    """Cut feature maps into non-overlapping windows.', 1)
    assert set(refused_tasks(WEEK4, sources(swin=text))) == {"4.1"}


def test_importlib_and_helper_modules_count_too():
    text = reference("swin.py").replace("import torch\n", "import torch\nfrom vitcourse import helpers\n", 1)
    helper = "import importlib\nwp = importlib.import_module('timm.layers').to_2tuple\n"
    refused = refused_tasks(WEEK4, sources(swin=text, helpers=helper))
    assert set(refused) == {t.id for t in WEEK4.tasks} and "used by swin.py" in refused["4.2"]


def test_allowed_packages_and_the_reference_pass():
    assert refused_tasks(WEEK4, sources(swin=reference("swin.py"))) == {}
    week3 = weeks.get(3)  # tqdm is allowed in Week 3; timm is only for its probes
    text = reference("training.py")
    assert "from tqdm import tqdm" in text and refused_tasks(week3, sources(training=text)) == {}
    assert set(refused_tasks(week3, sources(finetune="import timm\n" + reference("finetune.py")))) == {"3.6"}


PACKAGE = '''
import sys
from pathlib import Path

def facts(probe_file):
    site = [p for p in sys.path if "site-packages" in p]
    return {"timm_in_memory": "timm" in sys.modules, "pytest_in_memory": "pytest" in sys.modules,
            "timm_on_disk": any((Path(p) / "timm").exists() for p in site),
            "torch_on_disk": any((Path(p) / "torch").exists() for p in site)}

def use_timm():
    import timm  # noqa: F401
    return 1
'''


@pytest.fixture(scope="module")
def zygote():
    with Zygote(preload=("timm",), worker_preload=WEEK4.worker_packages) as z:
        yield z.address


@pytest.fixture
def root(tmp_path):
    (tmp_path / "vitcourse").mkdir()
    (tmp_path / "vitcourse" / "__init__.py").write_text("")
    (tmp_path / "vitcourse" / "look.py").write_text(PACKAGE)
    return tmp_path


def test_the_student_process_holds_no_reference_library(root, zygote):
    """timm is loaded where judges come from (preload), never where workers come from."""
    with Sandbox(root, ["vitcourse.look"], timeout=30, zygote=zygote, week=WEEK4) as box:
        facts = box.call("vitgrade.student.probes:call", target="vitcourse.look.facts", args=["x"])
        assert not facts["timm_in_memory"] and not facts["pytest_in_memory"]
        if isolate.level() != "basic":
            assert facts["torch_on_disk"] and not facts["timm_on_disk"], facts
        with pytest.raises(StudentFailure) as info:
            box.call("vitgrade.student.probes:call", target="vitcourse.look.use_timm")
    assert "'timm' may not be imported" in info.value.reason and "Week 4" in info.value.reason


def test_probes_are_bound_before_the_package(tmp_path, zygote):
    """A package that plants its own week_probes cannot change what the worker calls."""
    probes = tmp_path / "probes.py"
    probes.write_text("def answer():\n    return 41\n")
    (tmp_path / "sub" / "vitcourse").mkdir(parents=True)
    (tmp_path / "sub" / "vitcourse" / "__init__.py").write_text(
        "import sys, types\nfake = types.ModuleType('week_probes')\nfake.answer = lambda: 42\n"
        "real = sys.modules.get('week_probes')\nsys.modules['week_probes'] = fake\n"
        "if real is not None:\n    real.answer = lambda: 43\n")
    with Sandbox(tmp_path / "sub", ["vitcourse"], probes=probes, timeout=30, zygote=zygote, week=WEEK4) as box:
        assert box.call("week_probes:answer") == 41
        with pytest.raises(StudentFailure, match="no probe"):
            box.call("week_probes:missing")
