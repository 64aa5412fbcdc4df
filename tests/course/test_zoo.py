"""The zoo of broken and hostile submissions (grading/zoo/01_attention), graded through both paths.

Every entry must score exactly what its honest part earns (its ``# expect:`` header), with a
one-line reason that names the problem, without leaking hidden-test code; the bystanders (the
reference and the untouched stub, graded in the same batch) must keep their grades; nothing
may be left running; the repository's tests and solutions must not change; a run in which
anything was flagged must exit non-zero.

CI cost on 2 cores, measured quietly: ``vitgrade grade --jobs 2`` over the whole zoo and the two
bystanders, 139 s; ``nbgrader autograde`` (one process per student, 2 at a time) over the same
22 submissions, 313 s. ``VITGRADE_ZOO_QUICK=1`` grades only QUICK_NBGRADER through nbgrader (the
entries that attack nbgrader's kernel or the course folder, plus one of each failure class),
for a faster local loop; CI grades everything through both paths.

Bystander mode (issue 20): the nine harmful entries of section 2, three per batch, each batch with two
copies of the reference (test_bystanders_keep_their_grades_next_to_every_harmful_entry). Measured on
the shared 2-core machine at load average 4.4 to 9.7 from other jobs: 163 s wall, about 49 s of CPU
(user + sys); on a quiet machine its wall time is about its CPU time over the cores. With the nine
entries added, ``vitgrade grade`` over the whole zoo took 424 s (52 submissions with the notebook
entries; load average 8-9).
"""

import os

import pytest

from vitgrade import weeks
from vitgrade.build import mutants
from vitgrade.build.generate import task_points
from vitgrade.selfcheck import zoo

QUICK_NBGRADER = ["patch_grader", "forged_result", "write_outside", "background_process", "read_hidden_tests",
                  "loop_at_import", "os_exit", "syntax_error"]
ENTRIES = zoo.load(1)
NAMES = [e.name for e in ENTRIES]


def test_every_entry_applies_and_argues_its_score(tmp_path):
    points = task_points(1)
    for entry in ENTRIES:
        assert set(entry.expect) == set(points), f"{entry.name}: expect every task of week 1"
        assert all(0 <= entry.expect[t] <= points[t] for t in points), entry.name
        if entry.mutant is not None:
            assert "Honest part" in entry.description, f"{entry.name}: argue the expected score"
            # Its patch (on top of its bases) applies exactly once and changes the reference.
            package = entry.make(tmp_path / entry.name) / weeks.PACKAGE
            assert (package / "attention.py").read_text() != (weeks.SOLUTION_PACKAGE / "attention.py").read_text()
    zoo_names = {e.name for e in ENTRIES}
    assert not zoo_names & {m.name for m in mutants.load(1)}, "zoo and mutant names must differ"


@pytest.fixture(scope="module")
def vitgrade_run(tmp_path_factory):
    return zoo.grade_vitgrade(1, ENTRIES, tmp_path_factory.mktemp("zoo-vitgrade"), jobs=3)


@pytest.fixture(scope="module")
def nbgrader_run(tmp_path_factory):
    quick = os.environ.get("VITGRADE_ZOO_QUICK") == "1"
    entries = [e for e in ENTRIES if not quick or e.name in QUICK_NBGRADER or e.mutant is None]
    return entries, zoo.grade_nbgrader(1, entries, tmp_path_factory.mktemp("zoo-nbgrader") / "course", jobs=2)


def _assert_run(entries, run):
    hidden = zoo.hidden_lines(1)
    problems = {e.name: zoo.check(e, run.outcomes[e.name], run, hidden) for e in entries}
    lines, _ = zoo.table(1, entries, [run])
    print("\n".join(lines))
    assert not {k: v for k, v in problems.items() if v}, "\n".join(lines)
    assert not run.leftovers, f"processes left behind: {run.leftovers}"
    assert not run.repo_changes, f"repository files changed: {run.repo_changes}"
    flagged = any(o.status != "ok" for o in run.outcomes.values()) or any(
        not line.startswith("isolation:") for line in run.report)
    assert run.exit_code == (1 if flagged else 0), "\n".join(run.report)


@pytest.mark.slow
def test_zoo_through_vitgrade_grade(vitgrade_run):
    _assert_run(ENTRIES, vitgrade_run)


@pytest.mark.slow
def test_zoo_through_nbgrader_autograde(nbgrader_run):
    entries, run = nbgrader_run
    _assert_run(entries, run)


HARMFUL = zoo.harmful(zoo.load(1, bystanders=False, notebooks=True))


def test_every_attack_class_of_issue_20_has_a_harmful_entry():
    """Section 2 of issue 20, one realistic entry per class at least (those that need a limit this
    machine cannot set are left out here, and named in the table)."""
    classes = {e.bystander for e in HARMFUL} | {c for n, _ in zoo.SKIPPED.items()
                                               for c in [_class(n)] if c}
    assert classes >= set(zoo.CLASSES), sorted(set(zoo.CLASSES) - classes)


def _class(name):
    for path in weeks.get(1).zoo_dir.glob(f"{name}.*"):
        return zoo._fields(path).get("bystander", "")
    return ""


@pytest.mark.slow
def test_bystanders_keep_their_grades_next_to_every_harmful_entry(tmp_path):
    """Bystander mode (zoo.grade_bystanders), three harmful entries per batch with two copies of the
    reference, small limits (zoo.ZOO_ENV, BYSTANDER_ENV: 50 MB disk, 1 GB memory, 64 processes, half
    a core each): both references keep full marks with clean feedback, every entry scores what its
    header says, every batch finishes and leaves nothing (TMPDIR, mounts, groups, processes), and,
    on a quiet machine, each reference's suite takes at most twice its time alone."""
    run = zoo.grade_bystanders(1, HARMFUL, tmp_path, per_batch=3, alone_after=False)
    lines, problems = zoo.bystander_table(1, HARMFUL, run)
    print("\n".join(lines))
    assert problems == 0, "\n".join(lines)
