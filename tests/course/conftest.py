"""The repository's own tests: they check the course, not a student."""

import os
import sys
import tempfile
import time

import pytest

# timm imports wandb (when installed) for its optional experiment logging, and wandb makes two
# folders in TMPDIR that last as long as the process: the session's own TMPDIR check would find them.
# No course test uses wandb in the pytest process (Week 8's opted-in run is a subprocess of its own).
sys.modules.setdefault("wandb", None)
# jsonschema (imported with nbformat) imports rfc3987_syntax when installed: 38 grammars compiled, 1.6 s of
# CPU per pytest worker, for "iri" format checks nothing here runs (vitgrade.autograde.nbgrader_cli).
sys.modules.setdefault("rfc3987_syntax", None)

os.environ.setdefault("VIT_SCALE", "smoke")
os.environ.setdefault("MPLBACKEND", "Agg")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # One pytest worker per core (course.py test): torch in each worker, and in the notebook
    # kernels, judges and workers they start, uses one thread. Two 2-thread trainings on 2 cores
    # spin against each other: the Week 3 notebook took 483 s that way instead of 77 s.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

# Under xdist (course.py test: --dist loadfile --no-loadscope-reorder) each unit of work goes whole
# to the next free worker, in this order: the longest first (the zoo, the notebooks, verify), then
# the modules with a slow test, then the rest, so that no long unit starts last. A unit is a module,
# except in PER_WEEK, whose tests are one per week and share nothing: each is a unit of its own
# (pytest_xdist_make_scheduler), so eight weeks' notebooks and verifications spread over the workers
# instead of filling one of them for ten minutes.
LONGEST = ("test_zoo.py", "test_notebooks.py", "test_verify.py", "test_shapes_models.py", "test_week7_models.py")
PER_WEEK = ("test_notebooks.py", "test_verify.py", "test_student_notebooks.py")


def pytest_collection_modifyitems(items):
    slow = {item.path.name for item in items if item.get_closest_marker("slow")}

    def rank(item) -> int:
        name = item.path.name
        return LONGEST.index(name) if name in LONGEST else len(LONGEST) + (name not in slow)

    items.sort(key=rank)  # stable: the order inside a rank is pytest's


def pytest_xdist_make_scheduler(config, log):
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class ModuleOrWeek(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return nodeid if os.path.basename(module) in PER_WEEK else module

    return ModuleOrWeek(config, log)


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
