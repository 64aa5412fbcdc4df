"""One submission cannot harm another: limits for all its processes together, a disk of its own, a
system-call filter, result files and messages read without trusting them, and the grader's own
failures reported as "not graded", never scored.

Each test that needs a mechanism this machine cannot provide (cgroups, a tmpfs as root) skips and
says which; the hardening (seccomp, no_new_privs) and the reading of results work everywhere.
"""

import ctypes
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from vitgrade.confine import isolate, limits, scratch, seccomp
from vitgrade.confine.sandbox import GraderFailure, ResultRefused, Sandbox, StudentFailure, read_result
from vitgrade.confine.zygote import Zygote
from vitgrade.student import wire

MODULE = '''
import ctypes, errno, os, threading, time
import torch

N = {"x86_64": dict(unshare=272, setns=308, mount=165, umount2=166, pivot_root=155, ptrace=101, bpf=321,
                    keyctl=250, add_key=248, request_key=249, perf_event_open=298, clone=56, clone3=435),
     "aarch64": dict(unshare=97, setns=268, mount=40, umount2=39, pivot_root=41, ptrace=117, bpf=280,
                     keyctl=219, add_key=217, request_key=218, perf_event_open=241, clone=220, clone3=435)}


def syscalls(machine):
    """Each refused call, with arguments an unfiltered kernel answers with another errno (or 0)."""
    libc = ctypes.CDLL(None, use_errno=True)
    n = N[machine]
    calls = {"unshare": (0,), "setns": (-1, 0), "mount": (0, 0, 0, 0, 0), "umount2": (0, 0xFFFF),
             "pivot_root": (0, 0), "ptrace": (-1, 0, 0, 0), "bpf": (-1, 0, 0), "keyctl": (-1, 0, 0, 0, 0),
             "add_key": (0, 0, 0, 0, 0), "request_key": (0, 0, 0, 0), "perf_event_open": (0, 0, -1, -1, 0),
             "clone3": (0, 0), "clone": (0x10000000 | 0x200 | 17, 0, 0, 0, 0)}  # NEWUSER|FS: EINVAL unfiltered
    out = {}
    for name, args in calls.items():
        ctypes.set_errno(0)
        rc = libc.syscall(n[name], *[ctypes.c_long(a) for a in args])
        if rc == 0 and name == "clone":
            os._exit(0)
        out[name] = errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno())) if rc == -1 else "ok"
    return out


def status():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    return {k: fields[k].strip() for k in ("Seccomp", "NoNewPrivs")}


def threads_work():
    """torch with 4 threads (clone3 answered ENOSYS: the C library falls back to clone) and a
    Python thread."""
    torch.set_num_threads(4)
    a = torch.randn(256, 256)
    box = []
    t = threading.Thread(target=lambda: box.append(float((a @ a).sum())))
    t.start()
    t.join()
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    return [len(box), os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), torch.get_num_threads()]


def hold_memory(workers, mb):
    """A pool of processes, each holding mb megabytes, and the parent waiting for all of them."""
    r, w = os.pipe()
    for _ in range(workers):
        if os.fork() == 0:
            block = bytearray(mb << 20)
            for i in range(0, len(block), 4096):
                block[i] = 1
            os.write(w, b"1")
            time.sleep(600)
    os.close(w)
    for _ in range(workers):
        if not os.read(r, 1):
            raise RuntimeError("a helper died")
    return workers


def fork_until_refused(limit):
    started = 0
    while started < limit:
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            time.sleep(600)
        started += 1
    return started


def spin(threads, seconds):
    """Spin threads (torch releases the interpreter lock while it multiplies) for a while; return the
    CPU seconds this process used meanwhile."""
    stop = time.monotonic() + seconds
    def work():
        a = torch.randn(256, 256)
        while time.monotonic() < stop:
            a = torch.tanh(a @ a)
    before = time.process_time()
    pool = [threading.Thread(target=work) for _ in range(threads)]
    [t.start() for t in pool]
    [t.join() for t in pool]
    return time.process_time() - before


def fill_disk():
    """Write 1 MB blocks to the work folder until the disk refuses; return the megabytes written."""
    written = 0
    with open(os.path.join(os.environ["TMPDIR"], "fill.bin"), "wb") as fh:
        block = b"x" * (1 << 20)
        try:
            for _ in range(100_000):
                fh.write(block)
                fh.flush()
                written += 1
        except OSError as exc:
            return [written, exc.errno]
    return [written, 0]


def hang():
    time.sleep(600)
'''


@pytest.fixture(scope="module")
def zygote():
    with Zygote() as z:
        yield z.address


@pytest.fixture(scope="module")
def week_zygote():
    """A batch zygote for Week 1 (judges and workers), shared by the tests that grade."""
    from vitgrade.judging import judge

    with judge.new_zygote(1) as z:
        yield z.address


@pytest.fixture
def root(tmp_path):
    package = tmp_path / "vitcourse"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "box.py").write_text(textwrap.dedent(MODULE))
    return tmp_path


def call(box, function, *args, timeout=None):
    return box.call("vitgrade.student.probes:call", target=f"vitcourse.box.{function}", args=list(args),
                    timeout=timeout)


def needs(*what):
    missing = sorted(set(what) - scratch.bounded())
    return pytest.mark.skipif(bool(missing), reason=f"not in force on this machine: {', '.join(missing)} "
                                                    f"({scratch.describe()})")


# ------------------------------------------------------------------------------ the limits line
def test_the_limits_line_says_what_is_in_force_and_how(monkeypatch):
    line = scratch.describe()
    assert line.startswith("per submission: memory ")
    for name, word in (("memory", "for all its processes"), ("processes", "processes and threads ("),
                       ("cpu", " CPU (cgroup"), ("disk", "(its own tmpfs)")):
        assert (word in line) == (name in scratch.bounded()), (name, line)
    monkeypatch.setenv("VITGRADE_LIMITS", "rlimit")
    limits.hierarchies.cache_clear()
    scratch.disk_bounded.cache_clear()
    try:
        fallback = scratch.describe()
        assert scratch.bounded() == set()
        assert "address space per process only (rlimit)" in fallback and "CPU share: not bounded" in fallback
        assert "(RLIMIT_NPROC, counted per uid)" in fallback or "processes: not bounded" in fallback
        assert "[fallback: VITGRADE_LIMITS=rlimit]" in fallback and "per file only" in fallback
    finally:
        monkeypatch.delenv("VITGRADE_LIMITS")
        limits.hierarchies.cache_clear()
        scratch.disk_bounded.cache_clear()


# ------------------------------------------------------------------------------ hardening
def test_the_filter_and_no_new_privs_are_in_force_in_a_sandboxed_worker(root, zygote):
    """Seccomp 2 and NoNewPrivs 1 in the worker; each refused call answers EPERM (clone3: ENOSYS),
    where the same call in an unfiltered process answers something else; threads and fork work."""
    if not seccomp.supported():
        pytest.skip(f"no filter for {os.uname().machine}")
    machine = os.uname().machine
    control = subprocess.run([sys.executable, "-c", textwrap.dedent(MODULE) + f"\nprint(__import__('json').dumps("
                              f"syscalls({machine!r})))"], capture_output=True, text=True, timeout=120)
    unfiltered = json.loads(control.stdout)
    with Sandbox(root, ["vitcourse.box"], timeout=60, zygote=zygote) as box:
        assert call(box, "status") == {"Seccomp": "2", "NoNewPrivs": "1"}
        refused = call(box, "syscalls", machine)
        assert call(box, "threads_work") == [1, 7, 4]
    for name, got in refused.items():
        want = "ENOSYS" if name == "clone3" else "EPERM"
        assert got == want, f"{name}: {got} in the sandbox"
    # The control shows the filter, not a lack of privilege, refused them (pivot_root is refused by
    # a non-root kernel check too, so it cannot tell the two apart there).
    differ = {n for n in refused if unfiltered[n] != refused[n]}
    assert differ >= set(refused) - {"pivot_root"}, unfiltered


def test_a_jailed_kernel_runs_under_the_filter(tmp_path):
    policy = isolate.new_policy(2048, 2**20, network=True)
    script = ("fields = dict(l.split(':', 1) for l in open('/proc/self/status') if ':' in l); "
              "print(fields['Seccomp'].strip(), fields['NoNewPrivs'].strip())")
    proc = subprocess.run([sys.executable, "-m", "vitgrade.confine.jail", json.dumps(asdict(policy)), "--",
                           sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == (["2", "1"] if seccomp.supported() else ["0", "1"])


@needs("memory", "disk")
def test_a_jailed_kernel_joins_its_submissions_group_and_disk(tmp_path):
    """As TrustedExecute starts an nbgrader kernel: in the submission's control group, its home on
    the submission's tmpfs; when the grader closes the scratch, nothing is left."""
    with scratch.Batch() as batch:
        space = batch.scratch("kernel-alice")
        policy = isolate.new_policy(2048, 2**20, network=True)
        policy.cgroups, policy.scratch = space.group.procs_files, str(space.student)
        script = ("import os; print(open('/proc/self/cgroup').read().replace(chr(10), ' ')); "
                  "print(os.environ['HOME']); print(os.statvfs(os.environ['HOME']).f_blocks * "
                  "os.statvfs(os.environ['HOME']).f_frsize)")
        proc = subprocess.run([sys.executable, "-m", "vitgrade.confine.jail", json.dumps(asdict(policy)), "--",
                               sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        groups, home, size = proc.stdout.splitlines()
        name = os.path.basename(space.group.folders["memory"][0])  # sub-kernel-alice-*
        lines = groups.split()
        memory = [line for line in lines if ":memory:" in line] or [line for line in lines if line.startswith("0::")]
        assert memory and name in memory[0], groups
        assert home.startswith(str(space.student)) and int(size) == space.disk_mb * 2**20
        assert space.close() == []
    assert batch.leftovers_found == []


# ------------------------------------------------------------------------------ limits for all processes together
@needs("memory")
def test_memory_is_limited_for_all_of_a_submissions_processes_together(root, zygote, monkeypatch):
    """Six processes of 100 MB each, every one far under the per-process limit, in a group of
    300 MB: the killer acts inside the group, the grader says "ran out of memory", the next call
    works (the group was emptied)."""
    monkeypatch.setenv("VITGRADE_GROUP_MEMORY_MB", "300")
    with Sandbox(root, ["vitcourse.box"], timeout=60, zygote=zygote) as box:
        with pytest.raises(StudentFailure) as info:
            call(box, "hold_memory", 6, 100)
        assert "ran out of memory: your processes together used more than 300 MB" in info.value.reason
        assert call(box, "hold_memory", 1, 50) == 1


def test_processes_are_limited_for_a_submission(root, zygote, monkeypatch):
    """A fork loop stops at VITGRADE_PROCESSES (a pids group, or RLIMIT_NPROC where there is none)."""
    if "processes" not in scratch.bounded() and isolate.level() == "basic" and os.geteuid() == 0:
        pytest.skip("no pids cgroup, and RLIMIT_NPROC does not apply to root (isolation level basic as root)")
    monkeypatch.setenv("VITGRADE_PROCESSES", "24")
    with Sandbox(root, ["vitcourse.box"], timeout=60, zygote=zygote) as box:
        started = call(box, "fork_until_refused", 500)
        pids = box.space.group.pids() if box.space.group else set()
    assert 0 < started <= 24, started
    if "processes" in scratch.bounded():
        assert started >= 15  # the worker, its supervisor and the helpers share the 24
        assert not pids or len(pids) <= 24


@needs("cpu")
def test_the_cpu_share_holds_however_many_threads_spin(root, zygote, monkeypatch):
    """Eight threads spinning for 3 s use at most the submission's share (0.5 of a core), whatever
    else runs on the machine (other load can only lower it)."""
    monkeypatch.setenv("VITGRADE_CPUS", "0.5")
    with Sandbox(root, ["vitcourse.box"], timeout=60, zygote=zygote) as box:
        used = call(box, "spin", 8, 3.0)
    assert used <= 0.5 * 3.0 * 1.25 + 0.2, f"{used:.2f} CPU seconds in 3 s"


@needs("disk")
def test_a_submission_fills_its_own_disk_not_the_graders(root, zygote, monkeypatch, tmp_path):
    monkeypatch.setenv("VITGRADE_DISK_MB", "20")
    before = os.statvfs(os.environ.get("TMPDIR", "/tmp")).f_bavail
    with Sandbox(root, ["vitcourse.box"], timeout=60, zygote=zygote) as box:
        with pytest.raises(StudentFailure) as info:
            call(box, "fill_disk")  # the reply cannot be written either: the disk is full
        assert "filled its disk quota (20 MB)" in info.value.reason
        mount = str(box.space.student)
        assert mount in scratch.mounted_under(box.space.folder)
    assert mount not in scratch.mounted_under(Path(mount).parent), "the tmpfs was left mounted"
    assert not Path(mount).exists()
    after = os.statvfs(os.environ.get("TMPDIR", "/tmp")).f_bavail
    assert abs(after - before) * os.statvfs("/").f_frsize < 10 * 2**20, "the grader's disk filled"


# ------------------------------------------------------------------------------ reading what the student wrote
def test_result_files_are_read_without_trusting_them(tmp_path):
    """A FIFO (no writer: an ordinary open would block for good), a link, a file over the limit
    and a device are refused at once; a regular file is read."""
    fifo = tmp_path / "m0_out.npz"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(ResultRefused, match="not a regular file"):
        read_result(fifo, 2**20)
    assert time.monotonic() - started < 1.0
    (tmp_path / "real.json").write_text("{}")
    os.symlink(tmp_path / "real.json", tmp_path / "m0_out.json")
    with pytest.raises(ResultRefused, match="a link"):
        read_result(tmp_path / "m0_out.json", 2**20)
    (tmp_path / "big.npz").write_bytes(b"x" * 5000)
    with pytest.raises(ResultRefused, match="limit"):
        read_result(tmp_path / "big.npz", 4096)
    with pytest.raises(ResultRefused, match="not a regular file"):
        read_result(Path("/dev/zero"), 4096)
    assert read_result(tmp_path / "real.json", 4096) == b"{}"


def test_the_wire_refuses_an_array_referred_to_twice_and_oversized_messages(tmp_path):
    wire.write_message(tmp_path / "m", {"x": np.ones((256, 256), np.float32)})
    payload, npz = (tmp_path / "m.json").read_bytes(), (tmp_path / "m.npz").read_bytes()
    assert wire.read_message_bytes(payload, npz)["x"].shape == (256, 256)
    twice = json.dumps([{"__array__": "a0"}] * 3).encode()
    with pytest.raises(wire.BadMessage, match="a0 more than once"):
        wire.read_message_bytes(twice, npz)
    with pytest.raises(wire.BadMessage, match="larger than"):
        wire.read_message_bytes(payload, npz, limit=100_000)  # 256 KB of float32 once decoded
    # An npz whose array header claims far more data than the archive holds (a zip bomb's cousin).
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (1 << 20, 1 << 10)})
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w") as archive:
        archive.writestr("a0.npy", header.getvalue() + b"\0" * 64)
    with pytest.raises(wire.BadMessage, match="claims more data"):
        wire.read_message_bytes(b'{"__array__": "a0"}', bomb.getvalue())


# ------------------------------------------------------------------------------ the grader owns the scratch
def test_a_killed_judge_leaves_nothing(tmp_path, monkeypatch, week_zygote):
    """A submission that hangs until the judge itself times out and is killed: not graded (the
    grader's failure), and its scratch (tmpfs, group, folders) is gone all the same."""
    from vitgrade import weeks
    from vitgrade.judging import judge

    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr("tempfile.tempdir", None)
    monkeypatch.setenv("VITGRADE_IMPORT_TIMEOUT", "600")
    package = tmp_path / "sub" / weeks.PACKAGE
    package.mkdir(parents=True)
    for module in weeks.STUDENT_PACKAGE.iterdir():
        if module.suffix == ".py":
            (package / module.name).write_text(module.read_text())
    (package / "attention.py").write_text("import time\ntime.sleep(600)\n")
    with scratch.Batch() as batch:
        result = judge.run(1, tmp_path / "sub", timeout=10, batch=batch, zygote=week_zygote)
        time.sleep(0.5)
        assert batch.leftovers() == []
    assert judge.not_graded(result) and result.error.startswith("not graded: the grader timed out"), result.error
    assert batch.leftovers_found == []
    assert sorted(p.name for p in temp.iterdir() if not p.name.startswith("vitgrade-zygote-")) == []


@needs("disk", "memory")
def test_a_killed_graders_batch_is_reaped_by_the_next(tmp_path, monkeypatch):
    """The grading command itself killed (SIGKILL: no cleanup of its own): its batch folder, the
    tmpfs mounted in it and its groups are removed when the next batch starts."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    code = ("from vitgrade.confine import scratch; import os, sys; b = scratch.Batch(); s = b.scratch('alice'); "
            "print(s.to_env(), flush=True); os.kill(os.getpid(), 9)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    left = json.loads(proc.stdout)
    assert proc.returncode == -9 and scratch.mounted_under(Path(left["student"]))
    groups = [folder for folder, _ in left["group"].values()]
    assert all(os.path.isdir(g) for g in groups)
    with scratch.Batch() as batch:
        assert not Path(left["folder"]).exists() and not scratch.mounted_under(Path(left["student"]))
        assert not any(os.path.exists(g) for g in groups) and batch.folder.exists()


def test_a_grader_failure_is_not_graded_and_graded_again(tmp_path, monkeypatch, week_zygote):
    """The grader's own OSError (here: ENOSPC in its folder) on the first attempt: the submission is
    graded again and gets its verdict; twice: it is reported not graded, never scored 0."""
    from vitgrade import weeks
    from vitgrade.judging import grade, judge

    real = judge.run
    failures = {"count": 0, "limit": 1}

    def flaky(*args, **kwargs):
        if failures["count"] < failures["limit"]:
            failures["count"] += 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(judge, "run", flaky)
    monkeypatch.setenv("VITGRADE_ZYGOTE", week_zygote)  # the batch borrows it (grade.batch_zygote)
    stub = weeks.STUDENT_PACKAGE.parent
    run = grade.grade_many(1, [stub], None)
    assert list(run.retried) == [stub.name] and "No space left on device" in run.retried[stub.name]
    assert run.results[stub.name].status == "ok" and not run.not_graded
    failures.update(count=0, limit=2)
    run = grade.grade_many(1, [stub], None)
    result = run.results[stub.name]
    assert run.not_graded == [stub.name] and not run.ok
    assert result.error.startswith("not graded: ") and result.error.endswith("(graded twice)") and not result.tests


def test_the_fork_server_is_restarted_and_its_lost_children_are_the_graders_failure(root):
    """The zygote killed during a call (as the out-of-memory killer would): its worker dies with it;
    the sandbox reports a GraderFailure (not a crash of the student's code), and the watchdog
    restarts the zygote at the same address, which serves the next sandbox."""
    import threading

    with Zygote() as z:
        box = Sandbox(root, ["vitcourse.box"], timeout=60, zygote=z.address)
        try:
            assert call(box, "status")["NoNewPrivs"] == "1"
            first = z.proc.pid
            threading.Timer(1.0, os.kill, (first, signal.SIGKILL)).start()
            with pytest.raises(GraderFailure, match="fork server died"):
                call(box, "hang")
            with pytest.raises(GraderFailure):  # and every later call of this sandbox: no verdict
                call(box, "status")
        finally:
            box.cleanup()
        assert z.ensure(120) and z.proc.pid != first
        assert z.restarts and "killed by signal 9" in z.restarts[0]
        with Sandbox(root, ["vitcourse.box"], timeout=60, zygote=z.address) as again:
            assert call(again, "status")["Seccomp"] in ("0", "2")
    from vitgrade.confine import sandbox

    sandbox.FAILURES.clear()  # this process is no judge: nothing to report


@pytest.mark.skipif(not scratch.disk_bounded(), reason="needs root to mount a small tmpfs as TMPDIR")
def test_enospc_in_the_graders_folder_is_reported_not_graded_and_the_batch_goes_on(tmp_path, week_zygote):
    """`vitgrade grade` whose own temp folder (an 8 MB tmpfs) cannot hold one submission's working
    copy (it carries a 10 MB file): that submission is not graded (after a second attempt), never
    scored; the other submission of the batch is graded; the command exits non-zero."""
    import shutil

    from vitgrade import weeks
    from vitgrade.confine import view

    small = tmp_path / "small"
    shutil.copytree(weeks.STUDENT_PACKAGE, small / weeks.PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
    large = tmp_path / "large"
    shutil.copytree(small, large)
    (large / weeks.PACKAGE / "checkpoint.bin").write_bytes(os.urandom(10 << 20))
    temp = tmp_path / "tiny"
    temp.mkdir()
    view.mount("tmpfs", str(temp), "tmpfs", 0, "size=8m")
    try:
        proc = subprocess.run([sys.executable, "-m", "vitgrade.cli", "grade", "1", str(small), str(large),
                               "--jobs", "2"], env=dict(os.environ, TMPDIR=str(temp), VITGRADE_ZYGOTE=week_zygote),
                              capture_output=True, text=True, timeout=300)
        left = sorted(p.name for p in temp.iterdir())
    finally:
        ctypes.CDLL(None, use_errno=True).umount2(str(temp).encode(), 2)
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr[-2000:]
    assert "NOT GRADED: 1 submission(s): large" in out, out
    assert "retried large: the first attempt gave no verdict" in out and "No space left on device" in out, out
    assert any(line.startswith("small ") and line.split()[-1] == "ok" for line in out.splitlines()), out
    assert any(line.startswith("large ") and "not graded: " in line and "(graded twice)" in line
               for line in out.splitlines()), out
    assert "Traceback" not in out and left == [], left
