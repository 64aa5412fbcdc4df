"""Warm nbgrader kernels: forked from the batch's zygote, confined exactly like a kernel started cold.

When a grading batch re-runs notebooks, ``python -m vitgrade.confine.jail`` (what nbgrader's kernel
manager starts, :class:`vitgrade.autograde.nbtrust.JailedKernelManager`) relays to the zygote's
kernel template, which has imported ipykernel and the notebook's libraries once
(:mod:`vitgrade.confine.zygote`). These tests run kernels both ways through nbclient, as nbgrader
does, and check that the student's process cannot tell the difference that matters: the same view,
environment, home and identity; its own package from its own folder; interrupts, figures and the
end of the kernel (however it ends) as before.
"""

import json
import os
import signal
import time

import nbformat
import pytest
from nbclient import NotebookClient

from vitgrade import settings
from vitgrade.autograde.nbtrust import JailedKernelManager
from vitgrade.confine import isolate
from vitgrade.confine import zygote as zygote_mod

pytestmark = pytest.mark.skipif(isolate.level() == "basic", reason="no namespaces on this machine")

LOOK = """import json, os, sys
print(json.dumps({"top": sorted(os.listdir("/")), "here": sorted(os.listdir(".")), "env": sorted(os.environ),
                  "home": os.environ.get("HOME"), "pid": os.getpid(), "uid": os.getuid(),
                  "bob": os.path.exists(BOB), "warm": "torch" in sys.modules, "cwd": os.getcwd()}))"""


@pytest.fixture(scope="module")
def zygote():
    with zygote_mod.Zygote(kernel_preload=("ipykernel.kernelapp", "torch", "matplotlib.pyplot")) as zygote:
        yield zygote


def _student(tmp_path, name):
    """autograded/<name>/01_attention/ with a vitcourse package that says whose it is."""
    folder = tmp_path / "autograded" / name / "01_attention"
    (folder / "vitcourse").mkdir(parents=True)
    (folder / "vitcourse" / "__init__.py").write_text(f"OWNER = {name!r}\n")
    for path in (tmp_path, *tmp_path.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)  # the sandbox uid reads the submission
    return folder


def _run(folder, cells, monkeypatch, address=None, timeout=60):
    """Execute ``cells`` in a jailed kernel, as TrustedExecute does: warm with ``address`` (the
    batch's zygote), cold without. Returns the notebook and the kernel manager."""
    if address:
        monkeypatch.setenv(zygote_mod.ENV, address)
    else:
        monkeypatch.delenv(zygote_mod.ENV, raising=False)
    monkeypatch.setenv("GRADER_DB_PASSWORD", "hunter2")
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True, interrupt_on_timeout=True,
                            kernel_manager_class=JailedKernelManager, resources={"metadata": {"path": str(folder)}})
    client.km = client.create_kernel_manager()
    client.km.jail_policy = isolate.new_policy(settings.memory_mb(), 2**24, network=True)
    client.execute()
    return nb


def _printed(cell):
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def test_a_warm_kernel_sees_what_a_cold_one_sees(tmp_path, monkeypatch, zygote):
    """The same view of the machine (its notebook folder, no other student's), the same allow-listed
    environment (no grader secret), a fresh home removed afterwards, PID 1 of its own namespace and
    a sandbox uid; only warm: torch already imported."""
    folder = _student(tmp_path, "alice")
    _student(tmp_path, "bob")
    look = LOOK.replace("BOB", repr(str(tmp_path / "autograded" / "bob")))
    seen = {}
    for how, address in (("cold", None), ("warm", zygote.address)):
        nb = _run(folder, [look], monkeypatch, address)
        seen[how] = json.loads(_printed(nb.cells[0]).strip().splitlines()[-1])
    cold, warm = seen["cold"], seen["warm"]
    assert warm["warm"] and not cold["warm"], "the warm kernel did not come from the template"
    for key in ("top", "here", "env", "bob", "cwd", "pid"):
        assert warm[key] == cold[key], f"{key}: warm {warm[key]} != cold {cold[key]}"
    assert warm["pid"] == 1 and not warm["bob"] and "GRADER_DB_PASSWORD" not in warm["env"]
    assert warm["uid"] != os.getuid() or isolate.level() != "root", "the warm kernel kept the grader's uid"
    for home in (warm["home"], cold["home"]):
        deadline = time.monotonic() + 15
        while os.path.exists(home) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not os.path.exists(home), "the kernel's home folder was left behind"


def test_each_warm_kernel_imports_its_own_students_package(tmp_path, monkeypatch, zygote):
    """The template never imports the course package: every kernel gets the one in its folder."""
    for name in ("alice", "bob"):
        nb = _run(_student(tmp_path, name), ["import vitcourse; print(vitcourse.OWNER, vitcourse.__file__)"],
                  monkeypatch, zygote.address)
        owner, path = _printed(nb.cells[0]).split()
        assert owner == name and path.startswith(str(tmp_path / "autograded" / name)), (owner, path)


def test_a_warm_kernel_is_interrupted_and_shows_figures(tmp_path, monkeypatch, zygote):
    """nbclient interrupts a cell that runs past its timeout with SIGINT to the process it started
    (the relay, which forwards it): the student's cell gets KeyboardInterrupt once, and the kernel
    goes on; figures come back inline."""
    cells = ["import time\ntry:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n    print('interrupted')",
             "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()",
             "print('still here')"]
    nb = _run(_student(tmp_path, "alice"), cells, monkeypatch, zygote.address, timeout=5)
    assert _printed(nb.cells[0]) == "interrupted\n" and not any(o.output_type == "error" for o in nb.cells[0].outputs)
    assert any("image/png" in o.get("data", {}) for o in nb.cells[1].outputs), nb.cells[1].outputs
    assert _printed(nb.cells[2]) == "still here\n"


def test_killing_the_relay_ends_the_warm_kernel(tmp_path, monkeypatch, zygote):
    """A kernel manager that gives up kills the kernel's process group with SIGKILL: the relay dies,
    its zygote connection closes, and the zygote kills the kernel it forked (nothing left running,
    the kernel's folders removed)."""
    import asyncio

    folder = _student(tmp_path, "alice")
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setenv(zygote_mod.ENV, zygote.address)
    km = JailedKernelManager(kernel_name="python3")
    km.jail_policy = isolate.new_policy(settings.memory_mb(), 2**24, network=True)
    before = _descendants(zygote.proc.pid)

    async def start():
        await km.start_kernel(cwd=str(folder))
        client = km.client()
        client.start_channels()
        await client.wait_for_ready(timeout=60)  # what nbclient waits for before the first cell
        client.stop_channels()

    asyncio.run(start())
    kernel = _descendants(zygote.proc.pid) - before
    assert kernel, "no warm kernel was forked"
    deadline = time.monotonic() + 15
    os.killpg(km.provisioner.process.pid, signal.SIGKILL)
    km.provisioner.process.wait()
    while any(map(_alive, kernel)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(map(_alive, kernel)), "the warm kernel outlived its relay"
    while any(temp.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(temp.iterdir()), sorted(p.name for p in temp.iterdir())
    asyncio.run(km.cleanup_resources())  # its connection file


def _descendants(pid):
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        try:
            children = [int(c) for c in open(f"/proc/{parent}/task/{parent}/children").read().split()]
        except OSError:
            children = []
        found.update(children)
        todo += children
    return {p for p in found if _alive(p)}


def _alive(pid):
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] not in "ZX"
    except (OSError, IndexError):
        return False


def test_the_template_preloads_what_the_course_modules_import_never_the_course():
    """The kernel template's list: the notebook's own imports, then the other packages the course modules
    it imports use (Week 3: ``sklearn.datasets`` behind ``load_data``, 1 s a kernel, and ``transformers``
    behind the fine-tuning); never ``vitcourse`` (each student's own), ``vitgrade``, or ``wandb``."""
    from vitgrade import weeks
    from vitgrade.autograde.pipeline import notebook_imports

    for number in weeks.WEEKS:
        names = notebook_imports(weeks.get(number))
        tops = {name.split(".")[0] for name in names}
        assert "torch" in tops and not tops & {"vitcourse", "vitgrade", "wandb"}, (number, names)
    week3 = notebook_imports(weeks.get(3))
    assert {"timm", "sklearn.datasets", "transformers"} <= set(week3), week3


def test_re_run_notebooks_read_the_course_runs_unless_told_not_to(monkeypatch, tmp_path):
    """``VITGRADE_COURSE_RUNS`` (default 1): the kernels get ``VIT_COURSE_RUNS`` = the shipped runs'
    folder (absolute, so the kernel's view can hold it read-only); an instructor's own folder stays;
    0 trains every student's code. The jail keeps the variable for the kernel."""
    from vitgrade import weeks
    from vitgrade.confine import jail

    monkeypatch.delenv("VIT_COURSE_RUNS", raising=False)
    monkeypatch.delenv("VITGRADE_COURSE_RUNS", raising=False)
    assert settings.course_runs() == str(weeks.REPO / "data" / "runs")
    assert (weeks.REPO / "data" / "runs" / "digits-vit" / "run.json").is_file()
    monkeypatch.setenv("VIT_COURSE_RUNS", str(tmp_path))
    assert settings.course_runs() == str(tmp_path)
    monkeypatch.setenv("VITGRADE_COURSE_RUNS", "0")
    assert settings.course_runs() is None
    assert "VIT_COURSE_RUNS" in jail.KEEP
