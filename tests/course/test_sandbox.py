"""The sandbox turns every way student code can fail into a one-line reason."""

import textwrap

import numpy as np
import pytest

from vitgrade.confine.sandbox import Sandbox, StudentFailure
from vitgrade.confine.zygote import Zygote
from vitgrade.student import wire

MODULE = '''
import os, sys, time
import torch
from torch import nn

class Box(nn.Module):
    def __init__(self, mode="ok"):
        super().__init__()
        self.mode = mode
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        if self.mode == "raise":
            raise ValueError("shapes do not line up")
        if self.mode == "loop":
            while True:
                pass
        if self.mode == "exit":
            os._exit(0)
        if self.mode == "sysexit":
            sys.exit(0)
        if self.mode == "segfault":
            import ctypes
            ctypes.string_at(0)
        if self.mode == "oom":
            return torch.empty(10**11)
        if self.mode == "liar":
            class Liar(torch.Tensor):
                def __eq__(self, other):
                    return True
            return (x * 0).as_subclass(Liar)
        if self.mode == "print":
            print("x" * 10_000_000)
        return x * self.scale


def look(path):
    """What the student's process can list at path (an error message if nothing)."""
    try:
        return sorted(os.listdir(path))
    except OSError as exc:
        return exc.strerror
'''


@pytest.fixture(scope="module")
def zygote():
    with Zygote() as z:
        yield z.address


@pytest.fixture
def root(tmp_path):
    package = tmp_path / "vitcourse"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "box.py").write_text(textwrap.dedent(MODULE))
    return tmp_path


def call(box, mode, x=None):
    x = np.arange(6, dtype=np.float32).reshape(2, 3) if x is None else x
    return box.call("vitgrade.student.probes:run_module", cls="vitcourse.box.Box", init={"mode": mode},
                    args=[x])["outputs"][0]


def test_plain_call_returns_arrays(root, zygote):
    with Sandbox(root, ["vitcourse.box"], timeout=30, zygote=zygote) as box:
        out = call(box, "ok")
        assert isinstance(out, np.ndarray) and out.tolist() == [[0, 1, 2], [3, 4, 5]]


@pytest.mark.parametrize("mode, reason", [
    ("raise", "ValueError: shapes do not line up [vitcourse/box.py:"),
    ("loop", "timed out after 3 s"),
    ("exit", "exited (exit code 0) before answering"),
    ("sysexit", "raised SystemExit"),
    ("segfault", "crashed (segmentation fault)"),
    ("oom", "ran out of memory"),
])
def test_failures_become_one_line_reasons_and_the_next_call_works(root, zygote, mode, reason):
    with Sandbox(root, ["vitcourse.box"], timeout=3, memory_mb=4096, zygote=zygote) as box:
        with pytest.raises(StudentFailure) as info:
            call(box, mode)
        assert reason in info.value.reason
        assert "\n" not in info.value.reason
        assert call(box, "ok").shape == (2, 3)  # restarted cleanly


def test_a_failure_carries_the_exception_type(root, zygote):
    with Sandbox(root, ["vitcourse.box"], timeout=30, zygote=zygote) as box:
        with pytest.raises(StudentFailure) as info:
            call(box, "raise")
    assert info.value.type == "builtins.ValueError"
    assert info.value.is_a(ValueError) and info.value.is_a(Exception) and not info.value.is_a(TypeError)


def test_the_student_process_sees_only_its_view(root, zygote, tmp_path_factory):
    """An allow-list, not a deny-list: a folder the grader never named does not exist for it."""
    from vitgrade.confine import isolate
    from vitgrade.weeks import REPO

    if isolate.level() == "basic":
        pytest.skip("no namespaces on this machine: reads are not confined (vitgrade grade warns)")
    elsewhere = tmp_path_factory.mktemp("another_copy_of_the_course")
    (elsewhere / "attention.py").write_text("SECRET = 1\n")
    with Sandbox(root, ["vitcourse.box"], timeout=30, zygote=zygote) as box:
        look = lambda path: box.call("vitgrade.student.probes:call", target="vitcourse.box.look", args=[path])
        top = look("/")
        assert set(top) <= {"bin", "dev", "etc", "lib", "lib32", "lib64", "proc", "root", "sbin", "tmp", "usr",
                            *REPO.parts[1:2], *__import__("sys").prefix.split("/")[1:2]}, top
        assert look("/dev") == ["null", "urandom", "zero"]
        assert look(str(elsewhere)) == "No such file or directory"
        for hidden in ("/home", str(REPO / "solutions"), str(REPO / "tests"), str(REPO / "src")):
            assert isinstance(look(hidden), str), f"{hidden} is visible: {look(hidden)}"
        assert look(str(box.root / "vitcourse")) == sorted(p.name for p in (root / "vitcourse").iterdir())
        assert "1" in look("/proc") and len([p for p in look("/proc") if p.isdigit()]) <= 3, "a private /proc"


def test_tensor_subclass_arrives_as_plain_numbers(root, zygote):
    with Sandbox(root, ["vitcourse.box"], timeout=30, zygote=zygote) as box:
        out = call(box, "liar")
    assert type(out) is np.ndarray
    assert not np.array_equal(out, np.ones((2, 3)))


def test_printing_megabytes_does_not_break_grading(root, zygote):
    with Sandbox(root, ["vitcourse.box"], timeout=30, zygote=zygote) as box:
        assert call(box, "print").shape == (2, 3)
        assert box.output_tail(100).strip().endswith("x")


def test_broken_import_fails_every_call_fast(root, zygote):
    (root / "vitcourse" / "box.py").write_text("def broken(:\n")
    with Sandbox(root, ["vitcourse.box"], timeout=30, zygote=zygote) as box:
        for _ in range(2):
            with pytest.raises(StudentFailure, match="importing your code failed: SyntaxError"):
                call(box, "ok")


def test_wire_refuses_pickled_objects(tmp_path):
    np.save(tmp_path / "evil.npy", np.array([object()], dtype=object), allow_pickle=True)
    (tmp_path / "m.json").write_text('{"__array__": "a0"}')
    import zipfile
    with zipfile.ZipFile(tmp_path / "m.npz", "w") as zf:
        zf.write(tmp_path / "evil.npy", "a0.npy")
    with pytest.raises(ValueError):
        wire.read_message(tmp_path / "m")


def test_wire_roundtrip(tmp_path):
    value = {"a": [1, 2.5, None, "s", (np.ones(3, np.float32), True)], "nan": float("nan")}
    wire.write_message(tmp_path / "m", value)
    back = wire.read_message(tmp_path / "m")
    assert back["a"][:4] == [1, 2.5, None, "s"]
    assert isinstance(back["a"][4], tuple) and back["a"][4][0].tolist() == [1, 1, 1]
    assert np.isnan(back["nan"])


def test_a_jailed_kernel_sees_its_folder_and_an_allow_listed_environment(tmp_path, monkeypatch):
    """What vitgrade.confine.jail gives an nbgrader kernel: its notebook folder, a fresh home, no
    other folder of the machine, none of the grader's environment variables."""
    import json
    import subprocess
    import sys
    from dataclasses import asdict

    from vitgrade.confine import isolate
    from vitgrade.weeks import REPO

    if isolate.level() == "basic":
        pytest.skip("no namespaces on this machine")
    folder = tmp_path / "autograded" / "alice" / "01_attention"
    folder.mkdir(parents=True)
    (folder / "01_attention.ipynb").write_text("{}")
    (tmp_path / "autograded" / "bob").mkdir()
    policy = isolate.new_policy(2048, 2**20, network=True)
    bob, repo = str(tmp_path / "autograded" / "bob"), str(REPO / "solutions")
    script = ("import os, json; print(json.dumps({'top': sorted(os.listdir('/')), 'here': sorted(os.listdir('.')), "
              f"'bob': os.path.exists({bob!r}), 'repo': os.path.exists({repo!r}), 'env': sorted(os.environ), "
              "'home': os.environ['HOME'], 'pid': os.getpid()}))")
    env = dict(__import__("os").environ, GRADER_DB_PASSWORD="hunter2")
    proc = subprocess.run([sys.executable, "-m", "vitgrade.confine.jail", json.dumps(asdict(policy)), "--",
                           sys.executable, "-c", script], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = json.loads(proc.stdout)
    assert seen["here"] == ["01_attention.ipynb"]
    assert not seen["bob"] and not seen["repo"], "another student's folder or the repository is visible"
    assert "GRADER_DB_PASSWORD" not in seen["env"], "the grader's environment reached the kernel"
    assert seen["home"].startswith(__import__("tempfile").gettempdir()) and seen["pid"] == 1
    assert "home" not in seen["top"]
    assert not __import__("os").path.exists(seen["home"]), "the kernel's home folder was left behind"


def test_the_zygote_relays_exit_status_and_kills_an_abandoned_child(root, zygote):
    """The zygote is the workers' parent: it reports how one ended, and a child whose requester
    went away (a judge that died) is killed, not left running."""
    import os
    import time

    with Sandbox(root, ["vitcourse.box"], timeout=3, memory_mb=4096, zygote=zygote) as box:
        call(box, "ok")
        child = box._child
        box._req.close()  # what a dead judge leaves: no more requests; the worker's loop ends
        assert child.wait(10) == 0
        call(box, "ok")  # a fresh worker for the next call
        pid = box._child.pid
        box._child.close()  # the requester lets go without asking for an exit
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.05)
        alive = os.path.exists(f"/proc/{pid}") and "Z" not in open(f"/proc/{pid}/stat").read().split()[2]
        assert not alive, "the zygote left an abandoned worker running"
        box._child = None


def test_tensor_facts_travel_with_the_array(tmp_path):
    """What a tensor was in the student's process reaches the judge with its numbers (tensor_meta)."""
    import torch

    from vitgrade.hidden import tensor_meta

    leaf = torch.ones(2, 3, requires_grad=True)
    value = {"graph": leaf * 2, "half": torch.zeros(4, dtype=torch.bfloat16), "strided": torch.ones(3, 4).t(),
             "plain": np.zeros(2)}
    wire.write_message(tmp_path / "m", value)
    back = wire.read_message(tmp_path / "m")
    assert tensor_meta(back["graph"]) == {"dtype": "torch.float32", "requires_grad": True, "grad_fn": "MulBackward0",
                                          "device": "cpu", "contiguous": True, "shape": [2, 3]}
    assert tensor_meta(back["half"])["dtype"] == "torch.bfloat16" and back["half"].dtype == np.float32
    assert tensor_meta(back["strided"])["contiguous"] is False
    assert tensor_meta(back["graph"])["requires_grad"] and not tensor_meta(back["half"])["requires_grad"]
    for not_a_tensor in (back["plain"], back["graph"][0], back["graph"] * 1):
        with pytest.raises(KeyError):
            tensor_meta(not_a_tensor)
