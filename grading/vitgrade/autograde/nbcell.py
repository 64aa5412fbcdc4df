"""What an nbgrader autograder cell calls: ``grade_task("1.2")``.

Under ``nbgrader autograde`` it does nothing: :mod:`vitgrade.autograde.nbtrust` grades the
submission outside the kernel and overwrites these cells. Otherwise (``nbgrader validate``, an
instructor running the source notebook), the first call in a kernel runs the week's hidden suite
once (``hidden_tests/`` next to the notebook, against the ``vitcourse/`` package next to it) through
:mod:`vitgrade.judging.judge`, in a separate process; every call then prints its task's tests and
returns the points earned, which nbgrader records as the cell's partial credit. Only stdout is
written: any stderr output would make nbgrader score the cell 0.
"""

from __future__ import annotations

import os
from pathlib import Path

from vitgrade import weeks
from vitgrade.judging import judge
from vitgrade.judging.results import SuiteResult, task_report

_RESULTS: dict[tuple[int, str], SuiteResult] = {}


def _results(week: int, here: Path) -> SuiteResult:
    key = (week, str(here))
    if key not in _RESULTS:
        _RESULTS[key] = judge.run(week, here, "hidden", tests_dir=here / "hidden_tests")
    return _RESULTS[key]


def grade_task(task: str, here: str | Path = ".") -> float:
    if os.environ.get("NBGRADER_EXECUTION") == "autograde":
        # nbgrader autograde: the score comes from vitgrade.autograde.nbtrust.TrustedVerdict, which
        # runs the hidden suite outside this kernel and replaces this cell's output.
        print(f"Task {task}: graded outside this notebook")
        return 0.0
    result = _results(weeks.of_task(task).number, Path(here).resolve())
    if result.status != "ok":
        print(f"Task {task}: the grader could not run the tests ({result.error}). Score 0; "
              "your instructor has been told.")
        return 0.0
    earned, lines = task_report(result, task)
    print("\n".join(lines))
    return earned
