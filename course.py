#!/usr/bin/env python3
"""Set up and run the course with nothing but Python 3.11 and pip.

    python3 course.py test        # install (first time) and run the course's own test suite
    python3 course.py grade-demo  # install (first time), build Week 1 in nbgrader, autograde the
                                  # bundled sample submissions and print the gradebook
    python3 course.py setup       # only create/update the virtual environment (.venv/)
    python3 course.py vitgrade ARGS...   # any vitgrade command inside the environment

Each command creates .venv/ next to this file on first use, installs the pinned dependencies
from requirements.txt and the course package (editable), and reuses it afterwards until
requirements.txt or pyproject.toml change.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = Path(os.environ.get("VIT_VENV", HERE / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".course-installed"


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for name in ("requirements.txt", "pyproject.toml"):
        digest.update((HERE / name).read_bytes())
    return digest.hexdigest()


def _pip(*args: str) -> None:
    cmd = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q", *args]
    proc = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True)
    # pip warns about every local index folder it cannot use; keep only what matters.
    noise = ("WARNING: Location", "WARNING: There was an error checking the latest version")
    for line in (proc.stdout + proc.stderr).splitlines():
        if line.strip() and not line.startswith(noise):
            print(line)
    if proc.returncode != 0:
        sys.exit(f"pip install failed (exit {proc.returncode}): {' '.join(args)}")


def setup() -> None:
    if sys.version_info < (3, 11):
        sys.exit("The course needs Python 3.11 or newer.")
    if not PYTHON.exists():
        print(f"Creating the virtual environment in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if STAMP.exists() and STAMP.read_text() == _fingerprint():
        return
    print("Installing the pinned dependencies (first run: a few minutes) ...", flush=True)
    _pip("-r", str(HERE / "requirements.txt"))
    _pip("--no-deps", "-e", str(HERE))
    STAMP.write_text(_fingerprint())


def run(*cmd: str) -> int:
    env = dict(os.environ)
    env["PATH"] = str(BIN) + os.pathsep + env.get("PATH", "")
    env.setdefault("VIT_SCALE", "smoke")
    env.setdefault("MPLBACKEND", "Agg")
    return subprocess.call(list(cmd), cwd=HERE, env=env)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    if command not in ("setup", "test", "grade-demo", "vitgrade"):
        print(__doc__)
        return 2
    setup()
    if command == "setup":
        return 0
    if command == "test":
        return run(str(PYTHON), "-m", "pytest", "tests/course", *rest)
    if command == "grade-demo":
        return run(str(PYTHON), "-m", "vitgrade.cli", "nbgrader", "demo", *rest)
    return run(str(PYTHON), "-m", "vitgrade.cli", *rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
