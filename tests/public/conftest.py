"""Public tests: say plainly what a green run means."""


def pytest_configure(config):
    config.addinivalue_line("markers", "task(id, points): the exercise a test belongs to")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if exitstatus == 0:
        terminalreporter.write_line(
            "Public tests passed; the hidden tests decide the grade.", bold=True)
