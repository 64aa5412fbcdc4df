"""The same submission graded 5 times gets the same points, test by test.

One correct and one buggy submission (a mutant whose failure depends on random numbers:
dropout in the wrong place), graded 5 times each in one ``--jobs 2`` batch: seeds are fixed in
the worker (``torch.manual_seed`` per call, ``PYTHONHASHSEED=0``) and thread counts are set.
"""

import pytest

from vitgrade import weeks
from vitgrade.build import mutants, submissions
from vitgrade.judging import grade

RUNS = 5
BUGGY = "dropout_before_softmax"


@pytest.mark.slow
def test_grading_is_deterministic_test_by_test(tmp_path):
    mutant = next(m for m in mutants.load(1) if m.name == BUGGY)
    buggy = submissions.make(tmp_path / "buggy", "solution", mutant)
    paths = []
    for i in range(RUNS):
        for name, src in (("correct", weeks.SOLUTIONS), ("buggy", buggy)):
            dest = tmp_path / f"{name}-{i}"
            dest.symlink_to(src, target_is_directory=True)
            paths.append(dest)
    run = grade.grade_many(1, paths, tmp_path / "out", jobs=2)
    assert run.ok, (run.failed, run.tampering, run.gradebook_problems)
    for name in ("correct", "buggy"):
        seen = [[(t.nodeid, t.earned, t.outcome, t.message) for t in run.results[f"{name}-{i}"].tests]
                for i in range(RUNS)]
        assert all(s == seen[0] for s in seen), f"{name}: results differ between runs"
    correct, buggy_result = run.results["correct-0"], run.results["buggy-0"]
    assert correct.earned == correct.max_points
    assert 0 < buggy_result.earned < buggy_result.max_points
    print(f"determinism: correct {correct.earned:g}/{correct.max_points:g} x{RUNS}, "
          f"buggy {buggy_result.earned:g}/{buggy_result.max_points:g} x{RUNS}, identical test by test")
