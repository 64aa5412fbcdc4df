"""Helpers for the hidden suites (they run in the grader's process, never the student's)."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import numpy as np
import pytest

from vitgrade import weeks
from vitgrade.judge import ROOT_ENV
from vitgrade.sandbox import Sandbox


def submission_root() -> Path:
    root = os.environ.get(ROOT_ENV)
    if not root:
        raise pytest.UsageError(f"set {ROOT_ENV} to the submission folder (the one holding vitcourse/)")
    return Path(root)


def student_fixture(week: int, probes: Path):
    """A session-scoped ``student`` fixture: one sandbox for the submission under test."""

    box = Sandbox(submission_root(), weeks.get(week).import_names, probes={"week": probes})
    box.spawn()  # at conftest import: the worker's torch import overlaps with collection

    @pytest.fixture(scope="session")
    def student():
        yield box
        box.cleanup()

    return student


_SOURCES: dict[str, bytes] | None = None


def snapshot_sources(root: Path) -> None:
    """Keep the package's sources as they were before any student code ran (the judge calls
    this first): static checks must judge the code that was submitted, not a file the
    student's code rewrote while it ran."""
    global _SOURCES
    from vitgrade.integrity import Snapshot

    _SOURCES = Snapshot.take(Path(root) / weeks.PACKAGE).files


def student_source(module: str) -> tuple[str, ast.Module | None]:
    """Read (never import) a module of the submission, for static checks."""
    if _SOURCES is not None:
        text = _SOURCES.get(module, b"").decode("utf-8", "replace")
    else:
        path = submission_root() / weeks.PACKAGE / module
        text = path.read_text() if path.exists() else ""
    try:
        return text, ast.parse(text)
    except SyntaxError:
        return text, None


def assert_close(actual, expected, what: str, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Compare plain arrays with a message that says what differs and by how much."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    if actual.shape != expected.shape:
        raise AssertionError(f"{what}: wrong shape {tuple(actual.shape)}, expected {tuple(expected.shape)}")
    if not np.all(np.isfinite(actual)):
        raise AssertionError(f"{what}: contains NaN or inf")
    diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    bound = atol + rtol * np.abs(expected.astype(np.float64))
    if np.any(diff > bound):
        raise AssertionError(f"{what}: differs from the reference by up to {diff.max():.3g} "
                             f"(allowed {atol:g} + {rtol:g}*|expected|)")
