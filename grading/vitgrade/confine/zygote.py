"""A fork server: judges and sandbox workers start from a process that has already imported torch.

Starting a Python process that imports torch costs about 2 s of CPU; a grading run starts two per
submission (the judge and the student's worker) and more when a worker crashes. The zygote pays
that once per batch: :class:`Zygote` starts ``python -m vitgrade.confine.zygote`` with a clean
environment; it imports torch, numpy, pytest, the grader's own modules and the libraries the
week's hidden tests compare with (``Week.references``, e.g. timm), and then only forks.

It is started before any hidden test, reference or submission is loaded, and never loads one: a
forked child holds nothing secret in memory. It knows nothing about grading either: a request
names a role, and the child becomes

* a **worker** (:mod:`vitgrade.student.worker`): it confines itself with the request's
  :class:`~vitgrade.confine.isolate.Policy` (session, rlimits, namespaces, uid) and serves the
  student's code over the pipes it was handed;
* a **judge**: it runs the entry point the request names (``vitgrade.judging.judge:main``: a week's
  test suite, which writes the result to the pipe it was handed);
* a **kernel** (only when the batch re-runs notebooks, ``kernel_preload`` given): the Jupyter kernel
  of one student's notebook, confined exactly as :mod:`vitgrade.confine.jail` confines a kernel it
  starts itself (:func:`vitgrade.confine.jail.enter`), then run in the same process
  (:func:`vitgrade.confine.jail.run_kernel`) instead of ``exec``-ing a fresh Python that imports
  torch, ipykernel and matplotlib again. nbgrader's kernel manager still starts
  ``python -m vitgrade.confine.jail``: that light process relays (it asks for the kernel, forwards
  signals, exits as the kernel exits).

Workers and judges come from two different processes, so a worker never inherits what only a
judge may use. The zygote imports torch, numpy and the worker's own modules, then forks the
**worker template**, which imports only the packages the week allows in the student's process
(:attr:`vitgrade.weeks.Week.worker_packages`) and forks workers; then, when asked, the **kernel
template**, which imports ipykernel and what the week's notebook imports (derived from the
notebook's source, never from a student's ``vitcourse``: :func:`notebook_imports`) and forks
kernels; then the zygote itself imports pytest, the judge and the libraries the hidden tests
compare with (``Week.references``, e.g. timm) and forks judges. A worker of Week 4 cannot find
timm in memory, because nothing it descends from has imported it (and :mod:`vitgrade.confine.view`
keeps it off the worker's disk too); a kernel holds nothing of the judge's either.

Requests travel over Unix sockets (``SOCK_SEQPACKET``, one message per request, the pipes as
``SCM_RIGHTS``) in a folder only the grader can enter: ``<address>/judge``, ``<address>/worker`` and
``<address>/kernel``.
Each child is tied to the connection that asked for it: the zygote reports the child's pid, then
its exit status when it ends (it is the parent, so it is the one that can ``waitpid``), and kills
it if the connection closes first, so a judge that dies takes its worker with it. Children of the
zygote die with it (``PDEATHSIG``), and the zygote dies with the process that started it.
"""

from __future__ import annotations

import importlib
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ENV = "VITGRADE_ZYGOTE"  # the socket of the batch's zygote, for judges and nbgrader processes
MAX_MESSAGE = 1 << 20
MAX_FDS = 8
STARTUP_TIMEOUT = 300.0
RESTART_WAIT = 60.0  # how long a client waits for a zygote that is being restarted
OOM_SCORE_ADJ = -1000  # the out-of-memory killer never picks the zygote (as root)
MAX_RESTARTS = 5  # per batch: a zygote that keeps dying is a broken installation, not bad luck
TEMPLATE_FAILED = 3  # the zygote's exit status when a template could not start (not restarted)
# What a zygote (and so every child) may see of the grader's environment: nothing secret.
# TMPDIR too, so every folder of a grading run is made (and removed) in the temp folder it was given.
ENV_KEEP = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT", "TZ", "TMPDIR")


def clean_env(threads: int) -> dict[str, str]:
    env = {k: os.environ[k] for k in ENV_KEEP if k in os.environ}
    env.update(PYTHONPATH=str(Path(__file__).resolve().parents[2]), PYTHONHASHSEED="0",
               PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               CUDA_VISIBLE_DEVICES="", MPLBACKEND="Agg", HF_HUB_OFFLINE="1", NO_PROXY="*")
    return env


# ------------------------------------------------------------------------------------ client side
class Child:
    """A process the zygote forked for us: its pid, and its exit status when it ends."""

    def __init__(self, conn: socket.socket, pid: int) -> None:
        self.conn = conn
        self.pid = pid
        self.status: int | None = None  # the raw wait status, once known
        self.lost = False  # the zygote went away before reporting: it took the child with it

    @property
    def returncode(self) -> int | None:
        """Like ``Popen.returncode``: the exit code, or -signal; None while it runs."""
        return None if self.status is None else os.waitstatus_to_exitcode(self.status)

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait up to ``timeout`` seconds (None: forever) for the exit status; return returncode."""
        if self.status is not None:
            return self.returncode
        self.conn.settimeout(timeout)
        try:
            data = self.conn.recv(MAX_MESSAGE)
        except (TimeoutError, BlockingIOError):
            return None
        except OSError:
            data = b""
        # No message: the zygote itself went away, and took the child with it (the grader's failure).
        if not data:
            self.lost = True
        self.status = json.loads(data)["status"] if data else int(signal.SIGKILL)
        return self.returncode

    def poll(self) -> int | None:
        return self.wait(0) if self.status is None else self.returncode

    def kill(self) -> None:
        """SIGKILL the child's process group (it leads its own session) and the child."""
        for kill in (os.killpg, os.kill):
            try:
                kill(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def close(self) -> None:
        """Let go: the zygote kills the child if it is still running."""
        try:
            self.conn.close()
        except OSError:
            pass


ROLES = ("judge", "worker", "kernel")


def spawn(address: str, role: str, params: dict, fds: list[int] = (), wait: float = RESTART_WAIT) -> Child:
    """Ask the zygote at ``address`` for a child in ``role`` with ``params``; hand it ``fds``. A zygote
    that is not answering is given ``wait`` seconds to come back (its :class:`Zygote` restarts it at
    the same address) before the error is raised."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    deadline = time.monotonic() + wait
    while True:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        conn.settimeout(STARTUP_TIMEOUT)
        try:
            conn.connect(os.path.join(address, role))
            break
        except (ConnectionRefusedError, FileNotFoundError):
            conn.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    socket.send_fds(conn, [json.dumps({"role": role, "params": params}).encode()], list(fds))
    reply = conn.recv(MAX_MESSAGE)
    if not reply:
        conn.close()
        raise RuntimeError("the zygote refused the request (see its log)")
    return Child(conn, json.loads(reply)["pid"])


class Zygote:
    """Start a zygote for one batch; ``address`` is the folder of its sockets. Use as a context
    manager. ``preload``: what judges need imported (the judge itself, the week's references);
    ``worker_preload``: what the week allows in the student's process (nothing else is imported
    where workers come from).

    The zygote and its worker template are every judge's and worker's parents: if one died, nobody
    in the batch could be graded. So, as root, both are exempt from the out-of-memory killer
    (``oom_score_adj`` -1000; their children set their own score when they start: a judge 0, a
    student's process 1000), and a watchdog thread restarts the zygote, at the same address, when
    either dies anyway (at most ``MAX_RESTARTS`` times). What it was running then is reported by
    the children's owners as *not graded* (:attr:`Child.lost`) and graded again. ``restarts`` and
    ``notes`` say what happened, for the batch's summary.

    ``wait``: return once the zygote serves (or raise why it could not start). With ``wait=False`` it
    returns at once, so the caller prepares its batch while the zygote imports (its sockets exist from
    its first instant, and requests wait in them); :meth:`ensure` then waits, and a zygote that
    could not start is reported in ``notes`` (``ensure`` returns False).
    """

    def __init__(self, preload: tuple[str, ...] = (), threads: int | None = None,
                 worker_preload: tuple[str, ...] = (), kernel_preload: tuple[str, ...] | None = None,
                 wait: bool = True) -> None:
        from vitgrade import settings

        self.preload = tuple(preload)
        self.worker_preload = tuple(worker_preload)
        # None: no kernel template (a batch that re-runs no notebook pays nothing for one).
        self.kernel_preload = None if kernel_preload is None else tuple(kernel_preload)
        self.threads = threads or settings.threads()
        self.folder = Path(tempfile.mkdtemp(prefix="vitgrade-zygote-"))  # mode 0700: the grader's
        self.address = str(self.folder)
        self.log = self.folder / "zygote.log"
        self.restarts: list[str] = []  # why each restart happened
        self.notes: list[str] = []
        self._closing = False
        self._lock = threading.Lock()
        self._templates: list[int] = []
        self._ready = threading.Event()  # set when a start is over (see _start_failed)
        self._start_failed = False
        try:
            self.proc = self._start(wait)
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise
        self._watchdog = threading.Thread(target=self._watch, name="zygote-watchdog", daemon=True)
        self._watchdog.start()

    def _start(self, wait: bool = True) -> subprocess.Popen:
        from vitgrade.confine import isolate

        for role in ROLES:  # a dead zygote's sockets: the new one binds the same paths
            try:
                os.unlink(os.path.join(self.address, role))
            except FileNotFoundError:
                pass
        ready_r, ready_w = os.pipe()
        env = clean_env(self.threads)
        # Importing timm makes torch create its compile cache folder in TMPDIR; keep it in ours, and
        # anything else a library makes in TMPDIR while the zygote imports it (removed with it).
        env["TORCHINDUCTOR_CACHE_DIR"] = str(self.folder / "torchinductor")
        env["TMPDIR"] = str(self.folder)
        with open(self.log, "ab") as log:
            kernel = "-" if self.kernel_preload is None else ",".join(("ipykernel.kernelapp", *self.kernel_preload))
            proc = subprocess.Popen(
                [sys.executable, "-m", "vitgrade.confine.zygote", self.address, str(ready_w),
                 ",".join(self.worker_preload), kernel, *self.preload],
                env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=log, pass_fds=(ready_w,), preexec_fn=isolate.die_with_parent, cwd=self.folder)
        os.close(ready_w)
        self._ready.clear()
        if wait:
            self._await_ready(proc, ready_r)
        else:
            threading.Thread(target=self._await_ready, args=(proc, ready_r, False), name="zygote-start",
                             daemon=True).start()
        return proc

    def _await_ready(self, proc: subprocess.Popen, ready_r: int, raise_error: bool = True) -> None:
        with os.fdopen(ready_r, "rb") as ready:
            ok = ready.read(1) == b"1"  # blocks until judges can be forked (or the zygote died)
        if not ok:
            tail = self.log.read_text(errors="replace")[-2000:]
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if raise_error:
                raise RuntimeError(f"the zygote failed to start:\n{tail}")
            self.notes.append(f"the fork server failed to start:\n{tail}")
            self._start_failed = True
            self._ready.set()  # the start is over: ensure() answers at once
            return
        self._templates = _children(proc.pid)  # the worker template (and the kernel template)
        for pid in [proc.pid, *self._templates]:
            self._protect(pid)
        self._ready.set()

    def _protect(self, pid: int) -> None:
        try:
            Path(f"/proc/{pid}/oom_score_adj").write_text(str(OOM_SCORE_ADJ))
        except OSError as exc:  # lowering the score needs CAP_SYS_RESOURCE
            note = (f"the fork server's oom_score_adj stays 0 ({exc.strerror}: no CAP_SYS_RESOURCE); student "
                    "processes run at 1000, so the out-of-memory killer takes them first")
            if note not in self.notes:
                self.notes.append(note)

    def _watch(self) -> None:
        # The restarted zygote dies with the thread that started it (PR_SET_PDEATHSIG is per
        # thread): this one, which lives as long as it waits for it.
        while True:
            proc = self.proc
            template_died = False
            while True:
                try:
                    code = proc.wait(timeout=1.0)
                    break
                except subprocess.TimeoutExpired:
                    if not self._closing and not all(map(_running, self._templates)):
                        template_died = True  # the workers' or kernels' parent: without it, none starts
                        proc.kill()
            with self._lock:
                if self._closing or proc is not self.proc:
                    return
                if not self._ready.is_set() or self._start_failed:  # never started (wait=False): reported
                    return
                if code == TEMPLATE_FAILED:
                    tail = self.log.read_text(errors="replace")[-1500:] if self.log.exists() else ""
                    self.notes.append(f"the fork server could not start a template (not restarted):\n{tail}")
                    return
                if len(self.restarts) >= MAX_RESTARTS:
                    self.notes.append(f"the fork server died {len(self.restarts) + 1} times; not restarted")
                    return
                how = ("its worker or kernel template died" if template_died
                       else f"killed by signal {-code}" if code < 0 else f"exit {code}")
                try:
                    self.proc = self._start()
                except (OSError, RuntimeError) as exc:
                    self.notes.append(f"the fork server died ({how}) and could not be restarted: {exc}")
                    return
                self.restarts.append(f"the fork server died ({how}) and was restarted")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def ensure(self, timeout: float = RESTART_WAIT) -> bool:
        """Wait (up to ``timeout``) until a zygote is serving judges; False if none is (its templates
        may still be loading: a request for one waits in its socket)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._ready.wait(max(0.0, deadline - time.monotonic()))
            with self._lock:
                if self.proc.poll() is None and self._ready.is_set() and not self._start_failed:
                    return True
                if self._start_failed:
                    return False
                if self._closing or not self._watchdog.is_alive():
                    return False
            time.sleep(0.1)
        return False

    def spawn(self, role: str, params: dict, fds: list[int] = ()) -> Child:
        return spawn(self.address, role, params, fds)

    def close(self) -> None:
        with self._lock:
            self._closing = True
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Zygote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


JUDGE = "vitgrade.judging.judge"  # the module a judge runs (its entry point: vitgrade.judging.judge.ENTRY)


def for_week(week: int, kernel_preload: tuple[str, ...] | None = None, wait: bool = True) -> Zygote:
    """The zygote for a batch of one week: judges with the judge and the week's references loaded,
    workers with only the packages the week allows in the student's process (and nbformat in judges
    for a week whose hidden tests read the submitted notebook); with ``kernel_preload``
    (an nbgrader batch that re-runs notebooks) also notebook kernels with those modules loaded.
    Importing this module costs little: a command starts the zygote first and prepares meanwhile."""
    from vitgrade import weeks

    info = weeks.get(week)
    readers = ("nbformat",) if info.notebook_tasks else ()  # hidden tests that read the submitted notebook
    return Zygote(preload=(JUDGE, *info.references, *readers), worker_preload=info.worker_packages,
                  kernel_preload=kernel_preload, wait=wait)


def _children(pid: int) -> list[int]:
    """The child processes of ``pid``."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        found = []
        for entry in filter(str.isdigit, os.listdir("/proc")):
            try:
                if int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
        return found


def _running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


# ------------------------------------------------------------------------------------ server side
@dataclass
class _Running:
    pid: int
    conn: socket.socket
    pidfd: int


def _child_main(role: str, params: dict, fds: list[int], keep_fds: set[int]) -> int:
    """In the forked child: drop every descriptor it was not given, then become ``role``."""
    given = set(fds)
    for fd in map(int, os.listdir("/proc/self/fd")):
        if fd > 2 and fd not in given and fd not in keep_fds:
            try:
                os.close(fd)
            except OSError:
                pass
    os.environ.clear()
    os.environ.update(params.get("env", {}))
    import tempfile as child_tempfile

    child_tempfile.tempdir = None  # the request's TMPDIR, not the one the zygote imported under
    if role == "worker":
        from vitgrade.confine import isolate
        from vitgrade.student import worker

        req, rep, log = fds
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        for fd in (devnull, log):
            os.close(fd)
        os.chdir(params["cwd"])
        isolate.confine(isolate.Policy(**params["policy"]))
        worker.serve(params["root"], req, rep, params["inbox"], params["channel"], params.get("probe_dir"),
                     params["threads"], params.get("imports"))
        return 0
    if role == "judge":
        from vitgrade.confine import isolate

        result, out = fds
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(out)
        os.chdir(params["cwd"])
        os.setsid()
        isolate.die_with_parent()
        module, _, function = params["entry"].partition(":")  # e.g. vitgrade.judging.judge:main
        main = getattr(importlib.import_module(module), function)
        return main([*params["argv"], f"--result-fd={result}"])
    if role == "kernel":
        from vitgrade.confine import jail

        for target, fd in enumerate(fds[:3]):  # the relay's stdin, stdout and stderr (the kernel manager's)
            os.dup2(fd, target)
        for fd in set(fds) - {0, 1, 2}:
            os.close(fd)
        os.chdir(params["cwd"])
        cmd = jail.enter(jail.parse_policy(params["policy"]), list(params["cmd"]))
        return jail.run_kernel(cmd)
    raise ValueError(f"unknown role {role!r}")


def _fork(role: str, params: dict, fds: list[int], close_in_child: list, keep_fds: set[int]) -> int:
    pid = os.fork()
    if pid == 0:  # the child never returns into the server loop
        code = 70
        try:
            for obj in close_in_child:
                obj.close()
            sys.stdout.flush()
            code = _child_main(role, params, fds, keep_fds)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - report, then exit; never fall back into the loop
            import traceback

            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    return pid


def _load(names: list[str], optional: bool = False) -> None:
    """Import ``names``; with ``optional``, one that fails is reported and skipped (a kernel whose
    notebook imports it fails the same way, in the student's cell, where it belongs)."""
    import gc

    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - see the docstring
            if not optional:
                raise
            print(f"preloading {name} failed ({type(exc).__name__}: {exc}); imported where it is needed",
                  file=sys.stderr)
    gc.collect()
    gc.freeze()  # what is loaded now stays shared with every child (no copy-on-write by the GC)


def _listener(address: str, role: str) -> socket.socket:
    """The listening socket ``<address>/<role>`` (only the grader may connect)."""
    path = os.path.join(address, role)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    os.chmod(path, 0o600)
    listener.listen(64)
    return listener


def _template(listener: socket.socket, load, inherited: list[int]) -> int:
    """Fork a template that runs ``load()`` and then serves ``listener`` (requests that arrive while it
    loads wait in the socket's queue); return the read end of its ready pipe (one byte once it
    serves). ``inherited``: descriptors of the zygote's other templates, closed in this one."""
    from vitgrade.confine import isolate

    ready_r, ready_w = os.pipe()
    if os.fork() == 0:
        code = 70
        try:
            os.close(ready_r)
            for fd in inherited:
                os.close(fd)
            isolate.die_with_parent()
            load()
            _serve(listener, ready_w)
            code = 0
        except BaseException:  # noqa: BLE001 - report, never fall back into the caller
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(ready_w)
    listener.close()  # the template's to serve
    return ready_r


def _package_paths_later(names: list[str]) -> tuple[int, int]:
    """Fork a process that works out :func:`vitgrade.confine.view.package_paths` of ``names`` (what
    every judge's sandbox exposes) and :func:`vitgrade.confine.view.installed_names` (what the import
    rule knows is installed), half a second each of reading package metadata, while the zygote
    imports torch; return its pid and the read end of the pipe its JSON answer comes on."""
    paths_r, paths_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            os.close(paths_r)
            from vitgrade.confine import view

            with os.fdopen(paths_w, "wb") as answer:
                answer.write(json.dumps({"paths": view.package_paths(tuple(names)),
                                         "installed": view.installed_names()}).encode())
            code = 0
        except BaseException:  # noqa: BLE001 - the zygote works it out itself then
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(paths_w)
    return pid, paths_r


def _load_worker(names: list[str]) -> None:
    """The worker template's imports, and the setting every worker makes first: deterministic
    algorithms (:func:`vitgrade.student.worker.serve`), whose first call imports torch's compiler
    stack (``torch._dynamo``, 1.2-1.7 s of CPU): once here, not once per worker."""
    import torch

    torch.use_deterministic_algorithms(True, warn_only=True)
    _load(names)


def _load_kernel(names: list[str]) -> None:
    """The kernel template's imports. matplotlib reads its backend from the environment when it is
    imported: the one a kernel chooses for itself (ipykernel's inline backend), not the zygote's Agg;
    :func:`vitgrade.confine.jail.run_kernel` applies the kernel's own setting if it has one."""
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    if "torch" in {name.split(".")[0] for name in names}:
        # torch's compiler stack (1.2-1.7 s of CPU), imported at the first FlopCounterMode,
        # deterministic-algorithms switch or torch.compile of a notebook: once here.
        names = [*names, "torch._dynamo"]
    _load(names, optional=True)
    student = [n for n in sys.modules if n == "vitcourse" or n.startswith("vitcourse.")]
    if student:  # each kernel imports its own student's package, from its notebook's folder
        raise RuntimeError(f"the kernel template imported the course package ({', '.join(student)})")
    import threading

    if threading.active_count() > 1:  # confine() unshares namespaces: a kernel must start single-threaded
        raise RuntimeError(f"the kernel template runs {threading.active_count()} threads after its imports")


def serve(address: str, ready_fd: int, worker_preload: list[str], preload: list[str],
          kernel_preload: list[str] | None = None) -> None:
    """Fork the worker template (which serves ``<address>/worker``) and, with ``kernel_preload``, the
    kernel template (``<address>/kernel``), then load the judges' modules and serve ``<address>/judge``.

    Every socket is bound first, so a request never finds it missing; one that arrives while its
    server is still loading waits in the socket's queue. Ready (one byte on ``ready_fd``) when
    judges can be forked: the templates load meanwhile (a judge asks for its first worker a second
    or more after it starts). A template that fails to load ends the zygote with ``TEMPLATE_FAILED``
    (a broken installation: :class:`Zygote` does not restart it)."""
    from vitgrade.confine import isolate

    isolate.die_with_parent()
    listeners = {role: _listener(address, role) for role in ("judge", "worker", *(("kernel",) if kernel_preload
                                                                                  is not None else ()))}
    helper, paths_r = _package_paths_later(worker_preload)
    # timm imports wandb, when installed, for its optional experiment logging (0.5-0.9 s, and two
    # folders in TMPDIR); nothing a grader runs logs experiments.
    sys.modules.setdefault("wandb", None)
    import numpy  # noqa: F401
    import torch

    import vitgrade.student.probes  # noqa: F401
    import vitgrade.student.wire  # noqa: F401
    import vitgrade.student.worker  # noqa: F401

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    # The templates: the worker's (only what the student's process may use) and the kernel's.
    templates = {"worker": _template(listeners["worker"], lambda: _load_worker(worker_preload),
                                     [listeners["judge"].fileno(), paths_r,
                                      *(ls.fileno() for r, ls in listeners.items() if r == "kernel")])}
    if kernel_preload is not None:
        templates["kernel"] = _template(listeners["kernel"], lambda: _load_kernel(kernel_preload),
                                        [listeners["judge"].fileno(), templates["worker"], paths_r])
    from _pytest.config import default_plugins

    # pytest itself, the plugins a judge's pytest.main loads (vitgrade.judging.judge), the judge, the references.
    # torch.fx.experimental.symbolic_shapes (sympy, 0.5 s): what torch imports the first time one of
    # its checks fails with a message (nn.MultiheadAttention's reference computations, for one).
    _load(["pytest_timeout", *(f"_pytest.{name}" for name in default_plugins),
           "torch.fx.experimental.symbolic_shapes"], optional=True)
    _load(["pytest", *preload])
    from vitgrade.confine import view

    with os.fdopen(paths_r, "rb") as answer:  # forked judges inherit it (a second each otherwise)
        data = answer.read()
    os.waitpid(helper, 0)
    if data:
        answer = json.loads(data)
        view.remember_package_paths(tuple(worker_preload), tuple(answer["paths"]))
        view.remember_installed_names(tuple(answer["installed"]))
    else:  # the helper failed (its traceback is in the log): here, then
        view.package_paths(tuple(worker_preload))
        view.installed_names()
    _serve(listeners["judge"], ready_fd, templates)


def _serve(listener: socket.socket, ready_fd: int, templates: dict[str, int] | None = None) -> None:
    """Serve the requests that come to ``listener``; one byte on ``ready_fd`` first. ``templates``:
    role -> the read end of each template's ready pipe, watched here (see :func:`serve`)."""
    templates = templates or {}
    keep_fds = {int(fd) for fd in os.listdir("/proc/self/fd")} - {ready_fd, listener.fileno(), *templates.values()}
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    for role, fd in templates.items():
        selector.register(fd, selectors.EVENT_READ, ("template", role))
    running: dict[int, _Running] = {}  # by pidfd
    by_conn: dict[int, _Running] = {}  # by the connection's fd
    os.write(ready_fd, b"1")
    os.close(ready_fd)

    while True:
        for key, _ in selector.select():
            if isinstance(key.data, tuple):  # a template's ready pipe: one byte, or end of file if it died
                selector.unregister(key.fd)
                started = os.read(key.fd, 1) == b"1"
                os.close(key.fd)
                if not started:
                    print(f"the {key.data[1]} template failed to start", file=sys.stderr, flush=True)
                    os._exit(TEMPLATE_FAILED)
            elif key.data == "accept":
                conn, _ = listener.accept()
                selector.register(conn, selectors.EVENT_READ, "request")
            elif key.data == "request":
                conn = key.fileobj
                try:
                    message, fds, _, _ = socket.recv_fds(conn, MAX_MESSAGE, MAX_FDS)
                except OSError:
                    message, fds = b"", []
                if not message:  # the client let go: its child goes too
                    selector.unregister(conn)
                    child = by_conn.pop(conn.fileno(), None)
                    conn.close()
                    if child is not None:
                        for kill in (os.killpg, os.kill):
                            try:
                                kill(child.pid, signal.SIGKILL)
                            except (ProcessLookupError, PermissionError):
                                pass
                    continue
                request = json.loads(message)
                selector.unregister(conn)  # one request per connection; then it waits for the exit
                others = [c.conn for c in by_conn.values()] + [conn, listener]
                try:
                    pid = _fork(request["role"], request["params"], fds, others + [selector], keep_fds)
                except OSError as exc:  # out of processes or memory: refuse this one, keep serving
                    print(f"fork failed: {exc}", file=sys.stderr)
                    conn.close()
                    continue
                finally:
                    for fd in fds:
                        os.close(fd)
                pidfd = os.pidfd_open(pid)
                child = _Running(pid, conn, pidfd)
                running[pidfd] = child
                by_conn[conn.fileno()] = child
                selector.register(pidfd, selectors.EVENT_READ, "exit")
                selector.register(conn, selectors.EVENT_READ, "request")
                conn.send(json.dumps({"pid": pid}).encode())
            elif key.data == "exit":
                child = running.pop(key.fd)
                selector.unregister(key.fd)
                os.close(key.fd)
                _, status = os.waitpid(child.pid, 0)
                if by_conn.pop(child.conn.fileno(), None) is not None:
                    try:
                        child.conn.send(json.dumps({"status": status}).encode())
                    except OSError:
                        pass


def main(argv: list[str]) -> None:
    address, ready_fd, worker_preload, kernel_preload, *preload = argv
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    started = time.monotonic()
    kernel = None if kernel_preload == "-" else [n for n in kernel_preload.split(",") if n]
    try:
        serve(address, int(ready_fd), [n for n in worker_preload.split(",") if n], preload, kernel)
    finally:
        print(f"zygote stopped after {time.monotonic() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
