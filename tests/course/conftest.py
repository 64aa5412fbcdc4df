"""The repository's own tests: they check the course, not a student."""

import os
import tempfile
import time

import pytest

os.environ.setdefault("VIT_SCALE", "smoke")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session", autouse=True)
def temp_folder_left_clean(tmp_path_factory):
    """The whole session runs with TMPDIR pointing at one fresh folder, which grading must leave
    empty: judges, sandboxes, zygotes and jailed kernels all clean up after themselves (the
    session fails here if anything is left; tests/course/test_tempdir.py names the usual causes)."""
    folder = tmp_path_factory.mktemp("TMPDIR")
    saved = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"] = str(folder)
    # torch's compile cache (made when timm is imported) is a cache, not a leftover: keep it apart.
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(tmp_path_factory.mktemp("torchinductor")))
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again
    yield folder
    if saved[0] is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = saved[0]
    tempfile.tempdir = saved[1]
    deadline = time.monotonic() + 15  # a kernel's cleaner runs just after the kernel has gone
    while (left := sorted(p.name for p in folder.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, f"the course's tests left these in TMPDIR ({folder}): {left}"
