"""Snapshots and hashes: grade the bytes that were submitted, and notice any file that changes.

* :class:`Snapshot` holds a submission's package in memory (regular files only), taken before
  any student code runs. Every submission is graded from its snapshot, so a student who writes
  into another student's folder cannot change that student's grade.
* :func:`hash_tree` / :func:`diff` and :class:`Guard` compare everything that matters outside
  a submission's working copy (hidden tests, sources, other submissions, gradebooks) before and
  after grading. A difference is tampering: reported loudly, with a non-zero exit status.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

SKIP_DIRS = {"__pycache__", ".ipynb_checkpoints"}
MAX_FILE_BYTES = 16 * 2**20  # a package file larger than this is not source code


def _walk(root: Path):
    """(relative path, absolute path, lstat) of everything under root; no symlink is followed."""
    root = Path(root)
    if not os.path.lexists(root):
        return
    st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode):
        yield "", root, st
        return
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames) + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            if name.endswith(".pyc"):
                continue
            path = Path(dirpath) / name
            try:
                yield os.path.relpath(path, root), path, os.lstat(path)
            except OSError:
                continue


def file_digest(path: Path, st: os.stat_result) -> str:
    if stat.S_ISLNK(st.st_mode):
        return "link:" + os.readlink(path)
    if not stat.S_ISREG(st.st_mode):
        return f"special:{stat.S_IFMT(st.st_mode)}"
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def hash_tree(root: Path) -> dict[str, str]:
    """relative path -> sha256 (or link/special marker) for every file under ``root``."""
    out = {}
    for rel, path, st in _walk(root):
        try:
            out[rel] = file_digest(path, st)
        except OSError:
            out[rel] = "unreadable"
    return out


def diff(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Paths added, removed or changed between two :func:`hash_tree` results."""
    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))


def tree_digest(hashes: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for rel in sorted(hashes):
        digest.update(f"{rel}\0{hashes[rel]}\n".encode())
    return digest.hexdigest()


@dataclass
class Snapshot:
    """A package folder's regular files, in memory; for a week that grades its notebook
    (:attr:`vitgrade.weeks.Week.notebook_tasks`), the notebook submitted with it, as submitted
    (saved outputs included), or why there is none (``notebook_why``, one line for the student)."""

    origin: str
    files: dict[str, bytes] = field(default_factory=dict)
    notebook: bytes | None = None
    notebook_why: str = ""

    @classmethod
    def take(cls, package_dir: Path, origin: str | Path | None = None) -> Snapshot:
        snap = cls(str(origin or package_dir))
        for rel, path, st in _walk(Path(package_dir)):
            if stat.S_ISREG(st.st_mode) and st.st_size <= MAX_FILE_BYTES and rel:
                snap.files[rel] = Path(path).read_bytes()
        return snap

    def write(self, dest: Path) -> Path:
        dest.mkdir(parents=True, exist_ok=True)
        os.chmod(dest, 0o755)
        for rel, data in sorted(self.files.items()):
            path = dest / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(path.parent, 0o755)
            path.write_bytes(data)
            os.chmod(path, 0o644)
        return dest


class Guard:
    """Hashes of protected paths, taken now; :meth:`changes` lists what differs later."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = [Path(p) for p in paths]
        self.before = {p: hash_tree(p) for p in self.paths}

    def changes(self) -> list[str]:
        out = []
        for p in self.paths:
            out += [str(p / rel) if rel else str(p) for rel in diff(self.before[p], hash_tree(p))]
        return out
