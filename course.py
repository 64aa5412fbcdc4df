#!/usr/bin/env python3
"""Set up and run the course with nothing but Python 3.11 and pip.

    python3 course.py setup        # only create/update the virtual environment (.venv/)
    python3 course.py lab          # JupyterLab, in the environment
    python3 course.py check N      # week N's public tests on your code, with hints (--task N.k)
    python3 course.py test N       # week N's public tests, plain pytest (extra arguments go to pytest)
    python3 course.py demo [--port N]  # Week 8: the Attention Archaeology demo in your browser
    python3 course.py vitgrade ARGS...   # any vitgrade command inside the environment

In the course repository (instructors) also:

    python3 course.py test         # the course's own test suite (what CI runs)
    python3 course.py grade-demo   # build Week 1 in nbgrader, autograde the bundled sample
                                   # submissions, generate their feedback, print the gradebook

Each command creates .venv/ next to this file on first use (or uses $VIT_VENV), installs the
pinned dependencies from requirements.txt and the course package (editable), and reuses it
afterwards until requirements.txt or pyproject.toml change.
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
# The student release has no solutions and no course tests: instructor commands explain themselves.
REPOSITORY = (HERE / "solutions").is_dir() and (HERE / "tests" / "course").is_dir()
COMMANDS = ("setup", "lab", "check", "test", "grade-demo", "demo", "vitgrade")


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for name in ("requirements.txt", "pyproject.toml"):
        digest.update((HERE / name).read_bytes())
    return digest.hexdigest()


def _requirements() -> tuple[list[str], list[str]]:
    """The pins of requirements.txt: (installed together, installed with --no-deps)."""
    together, alone = [], []
    for line in (HERE / "requirements.txt").read_text().splitlines():
        pin, _, comment = line.partition("#")
        if pin.strip():
            (alone if comment.strip().startswith("no-deps") else together).append(pin.strip())
    return together, alone


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
    pins, no_deps = _requirements()
    _pip(*pins)
    if no_deps:  # packages whose declared dependencies conflict with the rest, never imported
        _pip("--no-deps", *no_deps)
    _pip("--no-deps", "-e", str(HERE))
    STAMP.write_text(_fingerprint())


def run(*cmd: str) -> int:
    env = dict(os.environ)
    env["PATH"] = str(BIN) + os.pathsep + env.get("PATH", "")
    # This folder's own packages first, whichever copy of the course the environment was made for.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE / "src"), str(HERE / "grading"),
                                                      env.get("PYTHONPATH")]))
    env.setdefault("VIT_SCALE", "smoke")
    env.setdefault("MPLBACKEND", "Agg")
    return subprocess.call(list(cmd), cwd=HERE, env=env)


def public_tests(week: str) -> str | None:
    """``tests/public/<id>`` for a week given as its number or id ("1", "01_attention"), or None."""
    root = HERE / "tests" / "public"
    for folder in sorted(p for p in root.glob("*") if p.is_dir()) if root.is_dir() else []:
        if week in (folder.name, folder.name.split("_")[0], folder.name.split("_")[0].lstrip("0")):
            return str(folder.relative_to(HERE))
    return None


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(__doc__)
        return 2
    if command == "grade-demo" and not REPOSITORY:
        print("grade-demo is for instructors: it needs the course repository (solutions, hidden tests).\n"
              "In this folder: python3 course.py check N, python3 course.py test N.")
        return 2
    setup()
    python = str(PYTHON)
    if command == "setup":
        print(f"The environment is ready: {VENV}. Next: python3 course.py lab, python3 course.py check 1.")
        return 0
    if command == "lab":
        return run(python, "-m", "jupyter", "lab", *rest)
    if command == "check":
        return run(python, "-m", "vitgrade.cli", "check", *rest)
    if command == "test":
        folder = public_tests(rest[0]) if rest else None
        if folder is not None:  # one week's public tests
            return run(python, "-m", "pytest", folder, *rest[1:])
        if REPOSITORY:  # the course's own suite (CI): one pytest worker per core, up to 4
            workers = str(max(1, min(4, os.cpu_count() or 1)))
            return run(python, "-m", "pytest", "tests/course", "-n", workers, "--dist", "loadfile",
                       "--no-loadscope-reorder", *rest)  # the order: tests/course/conftest.py
        return run(python, "-m", "pytest", "tests/public", *rest)
    if command == "grade-demo":
        return run(python, "-m", "vitgrade.cli", "nbgrader", "demo", *rest)
    if command == "demo":
        return run(python, "-m", "vitcourse.demo", *rest)
    return run(python, "-m", "vitgrade.cli", *rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
