"""The README's instructor commands, typed as the README writes them.

`vitgrade bench --n 100 --jobs 2` once crashed at the very end: its default `--out build/bench` is
relative to where it is typed, and `nbgrader export` runs in the course folder. The command runs
here exactly as written (only `--n` smaller, to stay cheap), from a folder that is not the course
folder, through both grading paths.
"""

import os
import re
import shlex
import subprocess
import sys
import time

import pytest

from vitgrade import weeks


def readme_command(program: str) -> list[str]:
    """The README line that runs ``program`` (e.g. "vitgrade bench"), comment stripped, as argv."""
    blocks = re.findall(r"```bash\n(.*?)```", (weeks.REPO / "README.md").read_text(), re.S)
    lines = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]
    (line,) = [line for line in lines if line.startswith(program + " ")]
    return shlex.split(line)


@pytest.mark.slow
def test_bench_runs_as_the_readme_writes_it(tmp_path):
    argv = readme_command("vitgrade bench")
    argv[argv.index("--n") + 1] = "2"  # the reference and one mutant, through both paths
    env = dict(os.environ, VITGRADE_EXECUTE="none")  # score-only nbgrader mode: no notebook kernels
    run = subprocess.run([sys.executable, "-m", "vitgrade.cli", *argv[1:]], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = tmp_path / "build" / "bench"  # the default --out, relative to where it was typed
    assert (out / "bench-vitgrade.json").exists() and (out / "bench-nbgrader.json").exists()
    assert "both paths agree on every student's points: True" in run.stdout, run.stdout


def test_a_figure_measured_beside_busy_jobs_is_marked_under_load():
    """``vitgrade bench``'s mark: other jobs' CPU (the machine's, from /proc/stat, minus the measurement's
    own) above a quarter of a core makes a figure UNDER LOAD, whatever the load average says."""
    from vitgrade.selfcheck import measure

    spin = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        with measure.Meter() as meter:
            time.sleep(1.5)  # the measurement itself does nothing
    finally:
        for proc in spin:
            proc.kill()
            proc.wait()
    if meter.cpu_source != "cpuacct":
        pytest.skip("no cpuacct group of its own here: the mark falls back on the load average")
    assert meter.cpu < 0.3 and meter.busy_before > measure.BUSY and meter.others > measure.BUSY, meter.describe()
    assert meter.under_load and "UNDER LOAD" in meter.describe()
