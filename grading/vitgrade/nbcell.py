"""What an nbgrader autograder cell calls: ``grade_task(week, "1.2")``.

Under ``nbgrader autograde`` it does nothing: :mod:`vitgrade.nbtrust` grades the submission
outside the kernel and overwrites these cells. Otherwise (``nbgrader validate``, an instructor
running the source notebook), the first call in a kernel runs the week's hidden suite once
(``hidden_tests/`` next to the notebook, against the ``vitcourse/`` package next to it) through
:mod:`vitgrade.judge`, in a separate process; every call then prints its task's tests and returns the points earned,
which nbgrader records as the cell's partial credit. Only stdout is written: any stderr
output would make nbgrader score the cell 0.
"""

from __future__ import annotations

import os
from pathlib import Path

from vitgrade import judge

_RESULTS: dict[tuple[int, str], judge.SuiteResult] = {}


def _results(week: int, here: Path) -> judge.SuiteResult:
    key = (week, str(here))
    if key not in _RESULTS:
        _RESULTS[key] = judge.run(week, here, "hidden", tests_dir=here / "hidden_tests")
    return _RESULTS[key]


def grade_task(week: int, task: str, here: str | Path = ".") -> float:
    if os.environ.get("NBGRADER_EXECUTION") == "autograde":
        # nbgrader autograde: the score comes from vitgrade.nbtrust.TrustedVerdict, which runs
        # the hidden suite outside this kernel and replaces this cell's output.
        print(f"Task {task}: graded outside this notebook")
        return 0.0
    result = _results(week, Path(here).resolve())
    if result.status != "ok":
        print(f"Task {task}: the grader could not run the tests ({result.error}). Score 0; "
              "your instructor has been told.")
        return 0.0
    rows = [t for t in result.tests if t.task == task]
    earned = round(sum(t.earned for t in rows), 4)
    total = round(sum(t.points for t in rows), 4)
    print(f"Task {task}: {earned:g} / {total:g} points from {len(rows)} hidden tests")
    for t in rows:
        mark = "PASS" if t.outcome == "passed" else "FAIL"
        print(f"  {mark} {t.name}" + (f": {t.message}" if t.message else ""))
    return earned
