"""The sandboxed side: imports the student's package and runs probe functions on request.

Started by :class:`vitgrade.sandbox.Sandbox` as ``python -m vitgrade.worker ...`` in its own
process group, with memory/file-size limits, a scratch working directory, and its stdout and
stderr sent to a capped log file. It reads one JSON request per line from a private pipe and
answers on another. Arguments and results travel through :mod:`vitgrade.wire` (arrays and
plain data only). Nothing here decides a score: the grader's process compares what comes back.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType


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
        "message": (message[0] if message else "")[:300],
        "where": _where(exc, root),
    }


def _load_probe_module(spec: str, probe_files: dict[str, str]) -> ModuleType:
    if spec in probe_files:
        path = probe_files[spec]
        mod_spec = importlib.util.spec_from_file_location(f"_probes_{spec}", path)
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
        return module
    return importlib.import_module(spec)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--req-fd", type=int, required=True)
    parser.add_argument("--rep-fd", type=int, required=True)
    parser.add_argument("--inbox", required=True)
    parser.add_argument("--channel", required=True)
    parser.add_argument("--probes", action="append", default=[], help="alias=path")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    root = str(Path(args.root).resolve())
    sys.path.insert(0, root)
    channel = Path(args.channel)
    inbox = Path(args.inbox)
    probe_files = dict(item.split("=", 1) for item in args.probes)

    import torch  # imported before the student's code, with the thread count fixed

    from vitgrade import wire

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)

    requests = os.fdopen(args.req_fd, "r")
    replies = os.fdopen(args.rep_fd, "w")
    probe_modules: dict[str, ModuleType] = {}

    def reply(obj: dict) -> None:
        replies.write(json.dumps(obj) + "\n")
        replies.flush()

    reply({"ready": True})  # torch is loaded: from here on, timeouts measure the student's code

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
                alias, func_name = request["probe"].split(":")
                if alias not in probe_modules:
                    probe_modules[alias] = _load_probe_module(alias, probe_files)
                func = getattr(probe_modules[alias], func_name)
                kwargs = wire.read_message(inbox / request["msg"], as_tensor=True)
                torch.manual_seed(request.get("seed", 0))
                result = func(**kwargs)
                wire.write_message(channel / (request["msg"] + "_out"), result)
                reply({"ok": True, "msg": request["msg"] + "_out"})
            else:
                reply({"ok": False, "error": {"type": "ProtocolError", "message": "unknown op"}})
        except BaseException as exc:  # noqa: BLE001 - every student failure becomes a message
            # SystemExit and KeyboardInterrupt too: the worker keeps serving the next test.
            reply({"ok": False, "error": _describe(exc, root)})


if __name__ == "__main__":
    main()
