"""Public tests: one task at a time, and say plainly what a green run means.

Every test carries ``@pytest.mark.task("2.3")``; this file also gives it the marker ``task2_3``,
so ``pytest tests/public/02_vit -m task2_3`` runs one task's tests (as ``vitgrade check 2 --task
2.3`` does).
"""

import pytest


def _marker(task_id: str) -> str:
    return "task" + task_id.replace(".", "_")


def pytest_configure(config):
    config.addinivalue_line("markers", "task(id, points): the exercise a test belongs to")
    for week in range(1, 9):
        for k in range(1, 10):
            config.addinivalue_line("markers", f"{_marker(f'{week}.{k}')}: the tests of Task {week}.{k}")


def pytest_collection_modifyitems(items):
    for item in items:
        task = item.get_closest_marker("task")
        if task is not None:
            item.add_marker(getattr(pytest.mark, _marker(str(task.args[0]))))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if exitstatus == 0:
        terminalreporter.write_line("Public tests passed; the hidden tests decide the grade.", bold=True)
