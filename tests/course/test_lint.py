"""The repository passes its own linter (ruff, configured in pyproject.toml)."""

import shutil
import subprocess
import sys

from vitgrade import weeks


def test_ruff_check_passes():
    ruff = shutil.which("ruff") or f"{sys.prefix}/bin/ruff"
    proc = subprocess.run([ruff, "check", "--no-cache", "."], cwd=weeks.REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-1000:]
