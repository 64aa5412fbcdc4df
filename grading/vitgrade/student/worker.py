"""The sandboxed side: imports the student's package and runs probe functions on request.

Forked from the zygote (:mod:`vitgrade.confine.zygote`) for one submission, already confined
(its own session, memory and file-size limits, and where the machine allows it no network, its
own uid and a private view of the file system), with its stdout and stderr sent to a capped log
file. It reads one JSON request per line from a private pipe and answers on another. Arguments
and results travel through :mod:`vitgrade.student.wire` (arrays and plain data only). Nothing here
decides a score: the grader's process compares what comes back.
"""

from __future__ import annotations

import importlib
import importlib.abc
import inspect
import json
import os
import pkgutil
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

PACKAGE = "vitcourse"


def _where(exc: BaseException, root: str) -> str:
    """'attention.py:57 in forward' for the deepest frame inside the student's package."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(root)]
    if not frames:
        return ""
    frame = frames[-1]
    return f"{os.path.relpath(frame.filename, root)}:{frame.lineno} in {frame.name}"


def _describe(exc: BaseException, root: str) -> dict:
    message = str(exc).strip().splitlines()
    return {
        "type": type(exc).__name__,
        # Every class the exception is an instance of, so a test can ask "is it a ValueError?"
        # without matching text: a subclass the student defined still counts.
        "mro": [f"{c.__module__}.{c.__qualname__}" for c in type(exc).__mro__],
        "message": (message[0] if message else "")[:300],
        "where": _where(exc, root),
    }


GENERIC = "vitgrade.student.probes"
PROBE_PACKAGES = ("course_probes", "week_probes")


def load_probes(probe_dir: str | None) -> dict[str, Callable]:
    """Every probe function, imported and bound now, before the student's package exists here.

    A request names a probe ('week_probes:reverse_task'); the worker answers from this table, never
    by importing or looking up a name at call time, so a package that puts its own ``week_probes``
    in ``sys.modules`` or rebinds a module attribute changes nothing the worker calls. (Student code
    that runs later can still patch the objects probes use, such as torch: what a probe returns is
    only ever data for the judge to check.)
    """
    names = [GENERIC]
    if probe_dir:
        for package in PROBE_PACKAGES:
            base = Path(probe_dir)
            if (base / package).is_dir():
                names.append(package)
                names += [f"{package}.{m.name}" for m in pkgutil.walk_packages([str(base / package)])]
            elif (base / f"{package}.py").is_file():
                names.append(package)
    table: dict[str, Callable] = {}
    for name in names:
        module = importlib.import_module(name)
        for attr, obj in vars(module).items():
            if inspect.isfunction(obj) and obj.__module__ == name and not attr.startswith("_"):
                table[f"{name}:{attr}"] = obj
    leaked = sorted(m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + "."))
    if leaked:
        raise ImportError(f"probe code imported the student's package at load time ({', '.join(leaked)}): "
                          "a probe imports it inside the function that uses it")
    return table


class ImportRule(importlib.abc.MetaPathFinder):
    """The week's import rule, said where it is broken: an import asked for by the student's
    package (directly, through ``importlib`` or through ``exec``) of a package the week does not
    allow fails with the rule in words and the package's name. It only words the refusal: at
    isolation levels root and userns such a package is not in the process's file view at all, and
    the judge checks the submitted sources for the same rule (:mod:`vitgrade.judging.imports`).
    Imports that a library makes for itself (torch loading its own dependencies) are left alone."""

    def __init__(self, allowed: list[str], rule: str, root: str, installed: list[str] | None = None) -> None:
        self.allowed = set(allowed) | set(sys.stdlib_module_names) | {PACKAGE}
        self.rule = rule
        self.root = root
        # A name nothing installed provides is a typo or a missing file: "No module named ..." says it.
        self.installed = None if installed is None else set(installed)

    def _asked_by_student(self) -> bool:
        frame = sys._getframe(2)
        while frame is not None:
            name = frame.f_code.co_filename
            if name.startswith(self.root):
                return True
            machinery = name.startswith("<") or name.startswith(IMPORTLIB)
            if not machinery:
                return False  # a library, or the grader's probe code
            frame = frame.f_back
        return False

    def find_spec(self, fullname: str, path=None, target=None):  # noqa: ANN001 - importlib's signature
        top = fullname.partition(".")[0]
        if top in self.allowed or (self.installed is not None and top not in self.installed) \
                or not self._asked_by_student():
            return None  # the ordinary finders decide
        raise ModuleNotFoundError(f"'{top}' may not be imported here: {self.rule}", name=fullname)


IMPORTLIB = os.path.dirname(importlib.__file__)


def serve(root: str, req_fd: int, rep_fd: int, inbox: str, channel: str, probe_dir: str | None,
          threads: int, imports: dict | None = None) -> None:
    """Answer requests until the request pipe closes. ``imports``: the week's import rule
    (``{"allowed": [...], "rule": "..."}``, see :class:`ImportRule`)."""
    root = str(Path(root).resolve())
    if probe_dir:
        sys.path.insert(0, probe_dir)  # week_probes, course_probes (copied from the hidden suite)
    import torch  # already imported by the zygote: this only fixes the thread count

    from vitgrade.student import wire

    probes = load_probes(probe_dir)
    if imports is not None:
        sys.meta_path.insert(0, ImportRule(imports["allowed"], imports["rule"], root, imports.get("installed")))
    sys.path.insert(0, root)  # the student's package: importable only from here on
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    requests = os.fdopen(req_fd, "r")
    replies = os.fdopen(rep_fd, "w")

    def reply(obj: dict) -> None:
        replies.write(json.dumps(obj) + "\n")
        replies.flush()

    reply({"ready": True})  # confined and loaded: from here on, timeouts measure the student's code
    for line in requests:
        request = json.loads(line)
        try:
            if request["op"] == "import":
                for name in request["modules"]:
                    module = importlib.import_module(name)
                    origin = str(Path(getattr(module, "__file__", "") or "").resolve())
                    if not origin.startswith(root):
                        raise ImportError(f"{name} was imported from {origin}, not the submission")
                reply({"ok": True})
            elif request["op"] == "call":
                func = probes.get(request["probe"])
                if func is None:
                    raise LookupError(f"the grader has no probe {request['probe']!r}")
                kwargs = wire.read_message(Path(inbox) / request["msg"], as_tensor=True)
                torch.manual_seed(request.get("seed", 0))
                result = func(**kwargs)
                wire.write_message(Path(channel) / (request["msg"] + "_out"), result)
                reply({"ok": True, "msg": request["msg"] + "_out"})
            else:
                reply({"ok": False, "error": {"type": "ProtocolError", "message": "unknown op"}})
        except BaseException as exc:  # noqa: BLE001 - every student failure becomes a message
            # SystemExit and KeyboardInterrupt too: the worker keeps serving the next test.
            reply({"ok": False, "error": _describe(exc, root)})
