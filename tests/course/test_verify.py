"""Tests that can fail: the solution passes, the stub fails, every mutant is caught."""

import pytest

from vitgrade import weeks
from vitgrade.build import mutants, submissions, verify


@pytest.mark.slow
@pytest.mark.parametrize("week", sorted(weeks.WEEKS))
def test_week_verifies(week):
    report = verify.verify_week(week, jobs=2)
    print(report.line())
    assert not report.problems, report.problems
    assert not report.mutants_missed, f"mutants not caught: {report.mutants_missed}"
    for suite, (passed, total) in report.solution.items():
        assert passed == total > 0, f"solution passes {passed}/{total} {suite} tests"
    for suite, (failed, total) in report.stub.items():
        assert failed == total > 0, f"stub fails only {failed}/{total} {suite} tests"


@pytest.mark.parametrize("week", sorted(weeks.WEEKS))
def test_every_mutant_applies_and_changes_the_code(week, tmp_path):
    zoo = mutants.load(week)
    assert len(zoo) >= 10, "each week keeps a zoo of at least 10 realistic bugs"
    for mutant in zoo:
        root = submissions.make(tmp_path / mutant.name, "solution", mutant)
        changed = (root / weeks.PACKAGE / mutant.file).read_text()
        assert changed != (weeks.SOLUTION_PACKAGE / mutant.file).read_text()
        assert mutant.description, f"{mutant.name} needs a description"


def test_points_shared_by_parametrized_cases_sum_exactly():
    """Three cases of one test share its 2 points: full marks are 2, not 2.000001."""
    from vitgrade.judging.plugin import ResultsPlugin
    from vitgrade.judging.results import SuiteResult

    plugin = ResultsPlugin()
    for i in range(3):
        plugin.cases[f"t.py::test_x[{i}]"] = dict(func="t.py::test_x", task="2.1", points=2.0,
                                                  outcome="passed", message="", duration=0.0)
    plugin.cases["t.py::test_y"] = dict(func="t.py::test_y", task="2.1", points=1.0,
                                        outcome="failed", message="wrong", duration=0.0)
    result = SuiteResult(week=2, suite="hidden", root=".", tests=plugin.results())
    assert result.earned == 2.0 and result.max_points == 3.0
    assert result.by_task() == {"2.1": (2.0, 3.0)}
