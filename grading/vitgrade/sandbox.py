"""The grader's side of the sandbox: run student code in another process, get plain arrays back.

A :class:`Sandbox` owns one worker process (see :mod:`vitgrade.worker`) for one submission.
Each :meth:`Sandbox.call` sends a probe name and arguments, waits at most ``timeout`` seconds
and returns the decoded result, or raises :class:`StudentFailure` with a one-line reason a
student can act on (their exception and line, a timeout, a crash, out of memory). A worker
that dies or hangs is killed with its whole process group and restarted for the next call;
a package that cannot even be imported fails every call at once with the same reason.
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from vitgrade import wire

GRADING_DIR = Path(__file__).resolve().parent.parent  # the folder holding the vitgrade package
LOG_LIMIT_BYTES = 32 * 2**20  # a worker printing more than this is stopped (SIGXFSZ)
SIGNAL_NAMES = {
    signal.SIGSEGV: "segmentation fault",
    signal.SIGABRT: "abort",
    signal.SIGKILL: "killed (out of memory or time)",
    signal.SIGXFSZ: "printed or wrote more than 32 MB",
    signal.SIGBUS: "bus error",
    signal.SIGFPE: "floating-point exception",
}


class StudentFailure(AssertionError):
    """The student's code failed in a way the grader can name (not a wrong answer)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _limits(memory_mb: int) -> None:  # runs in the child, before exec
    os.setsid()  # own process group: killing it takes everything the student started
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 2**20, memory_mb * 2**20))
    resource.setrlimit(resource.RLIMIT_FSIZE, (LOG_LIMIT_BYTES, LOG_LIMIT_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


class Sandbox:
    """One isolated worker process for one submission root (the folder holding ``vitcourse/``)."""

    def __init__(
        self,
        root: str | Path,
        modules: list[str],
        probes: dict[str, Path] | None = None,
        timeout: float = 30.0,
        import_timeout: float = 60.0,
        memory_mb: int = 6144,
        threads: int = 2,
    ) -> None:
        self.root = Path(root).resolve()
        self.modules = modules
        self.probes = {k: Path(v).resolve() for k, v in (probes or {}).items()}
        self.timeout = timeout
        self.import_timeout = import_timeout
        self.memory_mb = memory_mb
        self.threads = threads
        self.scratch = Path(tempfile.mkdtemp(prefix="vitgrade-"))
        self.channel = self.scratch / "channel"
        self.channel.mkdir()
        self.workdir = self.scratch / "work"
        self.workdir.mkdir()
        self.log_path = self.scratch / "output.log"
        self._proc: subprocess.Popen | None = None
        self._fatal: str | None = None  # set when the package cannot be imported at all
        self._counter = itertools.count()
        self.restarts = 0

    # -- process management -------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        keep = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT")
        env = {k: os.environ[k] for k in keep if k in os.environ}
        env.update(
            PYTHONPATH=str(GRADING_DIR),
            PYTHONHASHSEED="0",
            PYTHONDONTWRITEBYTECODE="1",
            OMP_NUM_THREADS=str(self.threads),
            MKL_NUM_THREADS=str(self.threads),
            CUDA_VISIBLE_DEVICES="",
            HOME=str(self.workdir),
            TMPDIR=str(self.workdir),
            MPLBACKEND="Agg",
            HF_HUB_OFFLINE="1",
            NO_PROXY="*",
        )
        return env

    def spawn(self) -> None:
        """Start the worker now (its imports overlap with the grader's); handshake later."""
        if self._proc is None and not self._fatal:
            self._spawn()

    def _spawn(self) -> None:
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        cmd = [
            sys.executable,
            "-m",
            "vitgrade.worker",
            f"--root={self.root}",
            f"--req-fd={req_r}",
            f"--rep-fd={rep_w}",
            f"--channel={self.channel}",
            f"--threads={self.threads}",
        ] + [f"--probes={alias}={path}" for alias, path in self.probes.items()]
        log = open(self.log_path, "ab")
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=self.workdir,
            env=self._env(),
            pass_fds=(req_r, rep_w),
            preexec_fn=lambda: _limits(self.memory_mb),
        )
        log.close()
        os.close(req_r)
        os.close(rep_w)
        self._req = os.fdopen(req_w, "w")
        self._rep = rep_r
        self._buffer = b""
        self._handshaken = False

    def _handshake(self) -> None:
        self._handshaken = True
        reply = self._roundtrip({"op": "import", "modules": self.modules}, self.import_timeout)
        if not reply.get("ok"):
            self._fatal = "importing your code failed: " + _format_error(reply["error"])
            self.close()
            raise StudentFailure(self._fatal)

    def _kill(self) -> None:
        if self._proc is None:
            return
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._proc.wait()
        try:
            self._req.close()
        except OSError:
            pass
        os.close(self._rep)
        self._proc = None

    def close(self) -> None:
        self._kill()

    def cleanup(self) -> None:
        self.close()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # -- requests -----------------------------------------------------------------------
    def _death_reason(self) -> str:
        code = self._proc.poll() if self._proc else None
        if code is None:
            return "the process running your code stopped answering"
        if code < 0:
            name = SIGNAL_NAMES.get(-code, signal.Signals(-code).name)
            return f"the process running your code crashed ({name})"
        return f"the process running your code exited (exit code {code}) before answering"

    def _roundtrip(self, request: dict, timeout: float) -> dict:
        try:
            self._req.write(json.dumps(request) + "\n")
            self._req.flush()
        except (BrokenPipeError, OSError):
            reason = self._death_reason()
            self._kill()
            raise StudentFailure(reason) from None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                self._kill()
                raise StudentFailure(
                    f"timed out after {timeout:.0f} s (an infinite loop, or far too slow)"
                )
            ready, _, _ = select.select([self._rep], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(self._rep, 65536)
                if not chunk:  # worker closed the pipe: it died
                    self._proc.wait()
                    reason = self._death_reason()
                    self._kill()
                    raise StudentFailure(reason)
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            self._kill()
            raise StudentFailure("the process running your code sent garbage") from None

    def call(self, probe: str, timeout: float | None = None, seed: int = 0, **kwargs: Any) -> Any:
        """Run ``probe`` ('alias:function') in the worker with ``kwargs``; return its result."""
        if self._fatal:
            raise StudentFailure(self._fatal)
        if self._proc is None or self._proc.poll() is not None:
            if self._proc is not None:
                self._kill()
                self.restarts += 1
            self._spawn()
        if not self._handshaken:
            self._handshake()
        name = f"m{next(self._counter)}"
        wire.write_message(self.channel / name, kwargs)
        reply = self._roundtrip(
            {"op": "call", "probe": probe, "msg": name, "seed": seed}, timeout or self.timeout
        )
        if not reply.get("ok"):
            raise StudentFailure(_format_error(reply["error"]))
        out = self.channel / str(reply.get("msg", ""))
        if out.parent != self.channel:
            raise StudentFailure("the process running your code answered with a bad path")
        try:
            return wire.read_message(out)
        except Exception as exc:  # noqa: BLE001 - malformed data is the student's failure
            raise StudentFailure(f"your code returned something that is not plain numbers ({exc})") from None

    def output_tail(self, limit: int = 2000) -> str:
        """The end of what the student's code printed (for the instructor's log)."""
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as fh:
            fh.seek(max(0, self.log_path.stat().st_size - limit))
            return fh.read().decode("utf-8", "replace")


def _format_error(error: dict) -> str:
    kind = error.get("type", "Error")
    message = error.get("message", "")
    where = error.get("where", "")
    if kind == "NotImplementedError":
        text = f"not implemented yet ({message})" if message else "not implemented yet"
    elif kind == "MemoryError" or "can't allocate memory" in message:
        text = "ran out of memory"
    elif kind in ("SystemExit", "KeyboardInterrupt"):
        text = f"your code raised {kind} (do not exit or interrupt from inside a module)"
    else:
        text = f"{kind}: {message}" if message else kind
    return f"{text} [{where}]" if where else text
