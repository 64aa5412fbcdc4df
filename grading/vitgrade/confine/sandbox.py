"""The grader's side of the sandbox: run student code in another process, get plain arrays back.

A :class:`Sandbox` owns one worker process (see :mod:`vitgrade.student.worker`, forked by the
batch's zygote, :mod:`vitgrade.confine.zygote`) for one submission. Each :meth:`Sandbox.call`
sends a probe name and arguments, waits at most ``timeout`` seconds and returns the decoded
result, or raises :class:`StudentFailure` with a one-line reason a student can act on (their
exception and line, a timeout, a crash, out of memory) and the kind of failure. A worker that
dies or hangs is killed with its whole process group and restarted for the next call; a package
that cannot even be imported fails every call at once with the same reason.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import select
import shutil
import signal
import stat
import struct
import tempfile
import time
import zipfile
import zlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vitgrade import settings, weeks
from vitgrade.confine import isolate, view
from vitgrade.confine import scratch as scratch_mod
from vitgrade.confine import zygote as zygote_mod
from vitgrade.student import wire

PACKAGE = weeks.PACKAGE
STARTUP_TIMEOUT = 180.0  # the worker's own start-up, before any student code
LOG_LIMIT_BYTES = 32 * 2**20  # a worker printing more than this is stopped (SIGXFSZ)
JSON_LIMIT_BYTES = 16 * 2**20  # the JSON half of a result (the arrays are capped by the wire)
MAX_REPLY_LINE = 1 << 20  # one reply line on the control pipe
# What decoding a malformed result raises (wire.BadMessage is a ValueError).
MALFORMED = (ValueError, KeyError, TypeError, IndexError, EOFError, OverflowError, zipfile.BadZipFile, zlib.error,
             struct.error)
SIGNAL_NAMES = {
    signal.SIGSEGV: "segmentation fault",
    signal.SIGABRT: "abort",
    signal.SIGKILL: "killed (out of memory or time)",
    signal.SIGXFSZ: "printed or wrote more than 32 MB",
    signal.SIGBUS: "bus error",
    signal.SIGFPE: "floating-point exception",
}
# StudentFailure.type for failures that are not an exception of the student's code.
TIMEOUT, CRASH, BUDGET, BAD_REPLY = "timeout", "crash", "budget", "bad-reply"


class StudentFailure(AssertionError):
    """The student's code failed in a way the grader can name (not a wrong answer).

    ``reason`` is the one line the student sees. ``type`` is what failed: the qualified name of
    the exception their code raised (``"builtins.ValueError"``), or one of ``"timeout"``,
    ``"crash"``, ``"budget"``, ``"bad-reply"``. ``mro`` lists every class the exception is an
    instance of, so :meth:`is_a` answers "is it a ValueError?" without matching text.
    """

    def __init__(self, reason: str, type: str = "", mro: list[str] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.type = type
        self.mro = list(mro or ([type] if type else []))

    def is_a(self, *classes: type[BaseException]) -> bool:
        return any(f"{c.__module__}.{c.__qualname__}" in self.mro for c in classes)

    @property
    def not_implemented(self) -> bool:
        return self.is_a(NotImplementedError)


class Sandbox:
    """One isolated worker process for one submission root (the folder holding ``vitcourse/``)."""

    def __init__(
        self,
        root: str | Path,
        modules: list[str],
        probes: Path | None = None,
        timeout: float | None = None,
        import_timeout: float | None = None,
        memory_mb: int | None = None,
        threads: int | None = None,
        zygote: str | None = None,
        week: weeks.Week | None = None,
    ) -> None:
        """Timeouts default to the settings (``VITGRADE_TIMEOUT``, ``VITGRADE_IMPORT_TIMEOUT``);
        every timeout, including one passed to :meth:`call`, is multiplied by
        ``VITGRADE_TIME_SCALE``. ``probes``: the week's probe module or package (importable in the
        worker as ``week_probes``, next to the course's ``course_probes``). ``zygote``: the address
        of the batch's zygote (default: ``$VITGRADE_ZYGOTE``, or a private one for this sandbox).
        ``week``: the week whose rule decides which installed packages the student's process may
        import (:attr:`vitgrade.weeks.Week.worker_packages`; the view holds only those, and an
        import of any other from the student's package fails with the rule in words); without it,
        the whole Python installation is visible."""
        self.week = week
        self.modules = modules
        self.scale = settings.time_scale()
        self.timeout = (timeout or settings.call_timeout()) * self.scale
        self.import_timeout = (import_timeout or settings.import_timeout()) * self.scale
        self.memory_mb = memory_mb or settings.memory_mb()
        self.threads = threads or settings.threads()
        self._own_zygote = None
        self._own_batch: scratch_mod.Batch | None = None
        self.space: scratch_mod.Scratch | None = None
        self._userns: str | None = None
        self.student_seconds = 0.0  # time spent waiting for the student's code (all calls)
        self.budget = settings.submission_budget() * self.scale
        self._child: zygote_mod.Child | None = None
        self._fatal: str | None = None  # set when the package cannot be imported at all
        self._broken: str | None = None  # set when the grader's side failed (GraderFailure)
        self._oom_seen = 0
        self._counter = itertools.count()
        self.zygote = zygote or os.environ.get(zygote_mod.ENV)
        try:
            self._prepare(Path(root), probes)
        except OSError as exc:  # the grader's own disk or folders: not the student's failure
            self._remove_own()
            raise grader_failure(f"the grader could not prepare the sandbox ({_os_error(exc)})") from None

    def _prepare(self, root: Path, probes: Path | None) -> None:
        if not self.zygote:
            self._own_zygote = zygote_mod.Zygote()
            self.zygote = self._own_zygote.address
        # The submission's scratch, made and removed by the grader (vitgrade.confine.scratch): in a
        # judge, the one its grader made; on its own, a batch of one.
        self.space = scratch_mod.Scratch.from_env()
        if self.space is None:
            self._own_batch = scratch_mod.Batch()
            self.space = self._own_batch.scratch("sandbox")
        self.scratch = Path(tempfile.mkdtemp(prefix="sandbox-", dir=self.space.folder))
        os.chmod(self.scratch, 0o711)  # the sandbox uid may enter, not list
        # Requests go to a folder only the grader writes (so the student cannot plant a symlink
        # the grader would write through); replies come from a folder only the worker writes, on
        # the submission's own disk quota, with its work folder.
        self.inbox = self.scratch / "in"
        self.inbox.mkdir(mode=0o755)
        os.chmod(self.inbox, 0o755)
        writable = Path(tempfile.mkdtemp(prefix="sandbox-", dir=self.space.student))
        os.chmod(writable, 0o711)
        self.channel = writable / "out"
        self.channel.mkdir()
        self.workdir = writable / "work"
        self.workdir.mkdir()
        (self.scratch / "view").mkdir(mode=0o700)  # where the worker's new root is built
        # Probe code is copied next to the channel: the hidden-test folder stays hidden.
        self.probe_dir = self.scratch / "probes"
        copy_tree(weeks.COMMON_PROBES, self.probe_dir / "course_probes")
        if probes is not None and probes.is_dir():
            copy_tree(probes, self.probe_dir / "week_probes")
        elif probes is not None and probes.exists():
            shutil.copyfile(probes, self.probe_dir / "week_probes.py")
            os.chmod(self.probe_dir / "week_probes.py", 0o644)
        # The worker imports its own copy of the package (regular files only, readable by the
        # sandbox uid), so nothing it does to those files reaches the submission or the grader.
        self.root = self.scratch / "submission"
        copy_tree(Path(root) / PACKAGE, self.root / PACKAGE)
        # What the student's process sees (levels root and userns): these folders, the Python
        # installation and the system libraries; nothing else exists for it.
        self.policy = isolate.new_policy(self.memory_mb, LOG_LIMIT_BYTES,
                                         read_only=[self.root, self.probe_dir, self.inbox],
                                         writable=[self.channel, self.workdir], mountpoint=self.scratch / "view",
                                         packages=self.week.worker_packages if self.week else None)
        group = self.space.group
        self.policy.cgroups = group.procs_files if group else []
        if group is None or "pids" not in group.folders:
            self.policy.processes = settings.processes()  # RLIMIT_NPROC instead
        for folder in (self.channel, self.workdir):
            isolate.hand_over(folder, self.policy)
        self.log_path = self.scratch / "output.log"

    # -- process management -------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        env = zygote_mod.clean_env(self.threads)
        env.update(HOME=str(self.workdir), TMPDIR=str(self.workdir))
        env[isolate.TOKEN_ENV] = self.policy.token
        return env

    def _alive(self) -> bool:
        return self._child is not None and self._child.poll() is None

    def _spawn(self) -> None:
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        try:
            if self.log_path.exists() and self.log_path.stat().st_size > LOG_LIMIT_BYTES // 2:
                tail = self.output_tail(65536)  # a restarted worker gets a fresh log budget
                self.log_path.write_text(tail)
            log = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            for fd in (req_r, req_w, rep_r, rep_w):
                os.close(fd)
            raise grader_failure(f"the grader could not open the sandbox's log ({_os_error(exc)})") from None
        params = {"root": str(self.root), "inbox": str(self.inbox), "channel": str(self.channel),
                  "probe_dir": str(self.probe_dir), "threads": self.threads, "cwd": str(self.workdir),
                  "policy": asdict(self.policy), "env": self._env(),
                  "imports": None if self.week is None else {"allowed": list(self.week.student_packages),
                                                              "installed": list(view.installed_names()),
                                                              "rule": self.week.import_rule}}
        try:
            self._child = zygote_mod.spawn(self.zygote, "worker", params, [req_r, rep_w, log])
        except (OSError, RuntimeError) as exc:  # no fork server to ask: the grader's failure
            for fd in (req_w, rep_r):
                os.close(fd)
            raise grader_failure(f"the fork server could not start a sandbox ({_os_error(exc)})") from None
        finally:
            for fd in (req_r, rep_w, log):
                os.close(fd)
        self._req = os.fdopen(req_w, "w")
        self._rep = rep_r
        self._buffer = b""
        self._handshaken = False

    def _handshake(self) -> None:
        self._handshaken = True
        # The worker's own start-up is the grader's cost, not the student's: wait for it
        # separately, then time the import of the student's package. A worker that dies before it
        # is ready has run no student code: that failure is the grader's.
        before = self.student_seconds
        try:
            self._roundtrip(None, STARTUP_TIMEOUT)
        except StudentFailure as failure:
            raise grader_failure(f"the sandbox did not start ({failure.reason})") from None
        self.student_seconds = before
        if self.policy.level == "userns":  # confined by now: its namespace names its leftovers
            try:
                self._userns = os.readlink(f"/proc/{self._child.pid}/ns/user")
            except OSError:
                self._userns = None
        try:
            reply = self._roundtrip({"op": "import", "modules": self.modules}, self.import_timeout)
            self._check_memory()
        except StudentFailure as failure:  # hung or crashed while importing: paid once, not per test
            self._fatal = "importing your code failed: " + failure.reason
            raise StudentFailure(self._fatal, failure.type) from None
        if not reply.get("ok"):
            self._fatal = "importing your code failed: " + self._format(reply["error"])
            self.close()
            raise StudentFailure(self._fatal, _error_type(reply["error"]))

    def _kill(self) -> None:
        if self._child is None:
            return
        self._child.kill()
        self._child.wait(10)
        self._kill_group()
        self._child.close()
        try:
            self._req.close()
        except OSError:
            pass
        os.close(self._rep)
        self._child = None

    def _kill_group(self) -> None:
        """Every process of this submission: its group, then whatever escaped it (uid, token)."""
        if self.space is not None:
            self.space.kill()
        isolate.kill_leftovers(self.policy, self._userns)

    def close(self) -> None:
        self._kill()
        if self.space is not None:
            self._kill_group()

    def cleanup(self) -> None:
        self.close()
        self._remove_own()

    def _remove_own(self) -> None:
        """Remove what this sandbox made for itself (a judge's scratch is the grader's to remove)."""
        if self.space is not None and self.space.owned is False and hasattr(self, "scratch"):
            shutil.rmtree(self.scratch, ignore_errors=True)
        if self._own_batch is not None:
            if self.space is not None:
                self.space.close()
            self._own_batch.close()
            self._own_batch = None
        if self._own_zygote is not None:
            self._own_zygote.close()
            self._own_zygote = None

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # -- requests -----------------------------------------------------------------------
    def _out_of_memory(self) -> bool:
        """Did the out-of-memory killer act in this submission's group since the last call?"""
        if self.space is None:
            return False
        kills = self.space.oom_kills()
        seen, self._oom_seen = self._oom_seen, kills
        return kills > seen

    def _check_memory(self) -> None:
        """An out-of-memory kill in the submission's group during a call fails the call, whatever
        it answered, and ends every process of the group (cgroup v2's ``memory.oom.group``): which
        process the killer picked is chance, the verdict must not be."""
        if self._out_of_memory():
            self._kill()
            raise StudentFailure(self._memory_reason(), CRASH)

    def _memory_reason(self) -> str:
        return (f"ran out of memory: your processes together used more than {settings.group_memory_mb()} MB "
                "(the limit for all of them together)")

    def _death_reason(self) -> str:
        code = self._child.wait(5) if self._child else None
        if self._child is not None and self._child.lost:
            raise grader_failure("the fork server died (it was restarted; this submission is graded again)")
        if self._out_of_memory():
            return self._memory_reason()
        if code is None:
            return "the process running your code stopped answering"
        if code < 0:
            name = SIGNAL_NAMES.get(-code, signal.Signals(-code).name)
            return f"the process running your code crashed ({name})"
        return f"the process running your code exited (exit code {code}) before answering"

    def _roundtrip(self, request: dict | None, timeout: float) -> dict:
        try:
            if request is not None:
                self._req.write(json.dumps(request) + "\n")
                self._req.flush()
        except (BrokenPipeError, OSError):
            reason = self._death_reason()
            self._kill()
            raise StudentFailure(reason, CRASH) from None
        started = time.monotonic()
        try:
            return self._await_reply(started + timeout, timeout)
        finally:
            self.student_seconds += time.monotonic() - started

    def _await_reply(self, deadline: float, timeout: float) -> dict:
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                self._kill()
                if self._out_of_memory():  # e.g. a pool whose worker the killer took waits forever
                    raise StudentFailure(self._memory_reason(), CRASH)
                raise StudentFailure(f"timed out after {timeout:.0f} s (an infinite loop, or far too slow)",
                                     TIMEOUT)
            ready, _, _ = select.select([self._rep], [], [], min(left, 1.0))
            if not ready and self.space is not None and self.space.oom_kills() > self._oom_seen:
                self._check_memory()  # the first kill ends the group at once (memory.oom.group)
            if ready:
                chunk = os.read(self._rep, 65536)
                if not chunk:  # worker closed the pipe: it died
                    reason = self._death_reason()
                    self._kill()
                    raise StudentFailure(reason, CRASH)
                self._buffer += chunk
                if len(self._buffer) > MAX_REPLY_LINE:
                    self._kill()
                    raise StudentFailure("the process running your code sent garbage", BAD_REPLY)
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            return json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            self._kill()
            raise StudentFailure("the process running your code sent garbage", BAD_REPLY) from None

    def call(self, probe: str, timeout: float | None = None, seed: int = 0, **kwargs: Any) -> Any:
        """Run ``probe`` ('module:function', e.g. 'week_probes:reverse_task') in the worker with
        ``kwargs``; return its result as plain data (arrays for tensors)."""
        if self._broken:
            raise GraderFailure(self._broken)
        try:
            return self._call(probe, timeout, seed, kwargs)
        except GraderFailure as failure:
            self._broken = failure.reason
            self._kill()
            raise

    def _call(self, probe: str, timeout: float | None, seed: int, kwargs: dict) -> Any:
        if self._fatal:
            raise StudentFailure(self._fatal, "import")
        if self.student_seconds > self.budget:
            raise StudentFailure(f"not run: your code already used this submission's time budget "
                                 f"({self.budget:.0f} s; see the timeouts above)", BUDGET)
        if not self._alive():
            self._kill()
            self._spawn()
        if not self._handshaken:
            self._handshake()
        name = f"m{next(self._counter)}"
        try:
            wire.write_message(self.inbox / name, kwargs)
        except OSError as exc:  # the grader's own folder (its disk): not the student's failure
            raise grader_failure(f"the grader could not write to its own folder ({_os_error(exc)})") from None
        self._out_of_memory()  # what happened before this call is not this call's doing
        reply = self._roundtrip(
            {"op": "call", "probe": probe, "msg": name, "seed": seed},
            self._scaled(timeout) if timeout else self.timeout,
        )
        self._check_memory()
        if not reply.get("ok"):
            error = reply.get("error", {}) if isinstance(reply.get("error"), dict) else {}
            raise StudentFailure(self._format(error), _error_type(error), error.get("mro"))
        out = str(reply.get("msg", ""))
        if not out or "/" in out or out.startswith("."):
            raise StudentFailure("the process running your code answered with a bad path", BAD_REPLY)
        try:
            payload = read_result(self.channel / (out + ".json"), JSON_LIMIT_BYTES)
            arrays = read_result(self.channel / (out + ".npz"), wire.max_message_bytes())
            return wire.read_message_bytes(payload, arrays)
        except ResultRefused as refused:
            raise StudentFailure(f"the process running your code answered with {refused}", BAD_REPLY) from None
        except MALFORMED as exc:  # malformed or oversized data is the student's failure
            raise StudentFailure(f"your code returned something that is not plain numbers ({exc})",
                                 BAD_REPLY) from None
        except Exception as exc:  # noqa: BLE001 - anything else is a fault of the grader's reading code
            raise grader_failure(f"the grader could not read a result ({type(exc).__name__}: {exc})") from None

    def _format(self, error: dict) -> str:
        text = _error_text(error)
        if "No space left on device" in str(error.get("message", "")):
            quota = f" ({self.space.disk_mb} MB)" if self.space is not None and self.space.tmpfs else ""
            text = f"your code filled its disk quota{quota}: write less to disk, or delete what you no longer need"
        elif error.get("type") == "BlockingIOError" and "Resource temporarily unavailable" in str(
                error.get("message", "")):
            text = (f"your code started too many processes or threads (the limit is {settings.processes()} "
                    "for all of them together)")
        where = error.get("where", "")
        return f"{text} [{where}]" if where else text

    def _scaled(self, timeout: float) -> float:
        """A test's own timeout (e.g. 120 s for a training run) under VITGRADE_TIME_SCALE: scaled
        up on slow machines, but never cut below VITGRADE_MIN_LONG_TIMEOUT (60 s: a loaded machine
        must not fail it)."""
        if self.scale >= 1:
            return timeout * self.scale
        return min(timeout, max(settings.min_long_timeout(), timeout * self.scale))

    def output_tail(self, limit: int = 2000) -> str:
        """The end of what the student's code printed (for the instructor's log)."""
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as fh:
            fh.seek(max(0, self.log_path.stat().st_size - limit))
            return fh.read().decode("utf-8", "replace")


def copy_tree(src: Path, dest: Path, mode: int = 0o755) -> None:
    """Copy folders and regular files only: no symlinks (they could point at the grader's
    files), FIFOs or devices; caches skipped; everything readable by a sandbox uid."""
    dest.mkdir(parents=True, exist_ok=True)
    os.chmod(dest, mode)
    if not src.is_dir() or src.is_symlink():
        return
    for entry in os.scandir(src):
        if entry.name in ("__pycache__",) or entry.name.endswith(".pyc"):
            continue
        if entry.is_dir(follow_symlinks=False):
            copy_tree(Path(entry.path), dest / entry.name, mode)
        elif entry.is_file(follow_symlinks=False):
            shutil.copyfile(entry.path, dest / entry.name, follow_symlinks=False)
            os.chmod(dest / entry.name, 0o644)


class ResultRefused(Exception):
    """A result file the grader will not read (a FIFO, a link, a device, too large)."""


def read_result(path: Path, limit: int) -> bytes:
    """The bytes of a file the student's process wrote, read without trusting it: opened with
    ``O_NOFOLLOW | O_NONBLOCK`` (a symbolic link is refused; a FIFO or device swapped in after any
    check cannot block the grader), then ``fstat`` on that descriptor (the file actually opened)
    must say a regular file of at most ``limit`` bytes, and no more than that is read even if it
    grows meanwhile."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ResultRefused(f"a link instead of a file ({path.name})") from None
        raise ResultRefused(f"no readable result file ({path.name}: {exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ResultRefused(f"something that is not a regular file ({path.name})")
        if info.st_size > limit:
            raise ResultRefused(f"a result file of {info.st_size / 2**20:.0f} MB ({path.name}; the limit is "
                                f"{limit / 2**20:.0f} MB)")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise ResultRefused(f"a result file that kept growing ({path.name})")
        return b"".join(chunks)
    finally:
        os.close(fd)


class GraderFailure(RuntimeError):
    """The grader's side failed, not the student's code (its disk, the fork server, a sandbox that
    did not start): the submission is *not graded* (and graded again once), never scored."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


FAILURES: list[str] = []  # every GraderFailure raised in this process: the judge reports the first


def grader_failure(reason: str) -> GraderFailure:
    FAILURES.append(reason)
    return GraderFailure(reason)


def _os_error(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}" + (f": {exc.filename}" if exc.filename else "")
    return f"{type(exc).__name__}: {exc}"


def _error_type(error: dict) -> str:
    mro = error.get("mro") or []
    return mro[0] if mro else error.get("type", "")


def _format_error(error: dict) -> str:
    where = error.get("where", "")
    text = _error_text(error)
    return f"{text} [{where}]" if where else text


def _error_text(error: dict) -> str:
    kind = str(error.get("type", "Error"))
    message = str(error.get("message", ""))
    if kind == "NotImplementedError":
        text = f"not implemented yet ({message})" if message else "not implemented yet"
    elif kind == "MemoryError" or "can't allocate memory" in message:
        text = "ran out of memory"
    elif "File too large" in message:  # Python ignores SIGXFSZ: the write fails instead
        text = "printed or wrote more than 32 MB (remove debug prints)"
    elif kind in ("SystemExit", "KeyboardInterrupt"):
        text = f"your code raised {kind} (do not exit or interrupt from inside a module)"
    else:
        text = f"{kind}: {message}" if message else kind
    return text
