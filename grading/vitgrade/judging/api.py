"""The hidden-test API: a few lines per test, the student's code always in the sandbox.

A hidden test asks for the ``student`` fixture (the judge's plugin provides it: a week needs no
conftest) and compares what comes back with a reference it computes itself::

    def test_patchify_order(student):
        x = rand(2, 3, 8, 12)
        assert_close(student.fn("patches.patchify", x, 4), reference(x), "patchify")

    def test_attention_rejects_bad_width(student):
        student.raises(ValueError, "vit.Attention", dim=10, num_heads=3)

    def test_block_matches_timm(student):
        out = student.module("vit.Block", init=dict(dim=24, num_heads=4), state=ref.state_dict())(x)

Every value crosses the process boundary as plain data: tensors go in as tensors and come back as
numpy arrays; tuples stay tuples. A failure of the student's code raises
:class:`~vitgrade.confine.sandbox.StudentFailure` (a one-line reason and the exception's type),
which fails the test with that reason. Week-specific code that must run next to the student's
(training loops, measurements) lives in ``tests/hidden/<id>/probes.py`` (or a ``probes/``
package) and is called with :meth:`Student.probe`; course-wide helpers in ``tests/hidden/common``
are importable there as ``course_probes``.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import numpy as np

from vitgrade import weeks
from vitgrade.confine.sandbox import Sandbox, StudentFailure

GENERIC = "vitgrade.student.probes"


def _short(value: Any) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"<{'x'.join(map(str, shape))}>"
    text = repr(value)
    return text if len(text) <= 30 else text[:27] + "..."


def describe_call(target: str, args: tuple, kwargs: dict) -> str:
    """'patches.patchify(<2x3x8x12>, 4)', for messages."""
    parts = [_short(a) for a in args] + [f"{k}={_short(v)}" for k, v in kwargs.items()]
    return f"{target}({', '.join(parts)})"


def _names(expected: type[BaseException] | tuple[type[BaseException], ...]) -> tuple[tuple, str]:
    classes = expected if isinstance(expected, tuple) else (expected,)
    return classes, " or ".join(c.__name__ for c in classes)


class ModuleRef:
    """A module of the student's package, built fresh in the sandbox for every call.

    ``ref(*args, **kwargs)`` returns what ``forward`` returns; :meth:`run` gives everything
    (several calls, training mode, gradients: see :func:`vitgrade.student.probes.run_module`).
    """

    def __init__(self, student: Student, path: str, init: dict | None, state: dict | None, train: bool) -> None:
        self.student, self.path = student, path
        self.init, self.state, self.train = init or {}, state, train

    def run(self, *args: Any, method: str = "forward", calls: int = 1, grad_weights: list | None = None,
            train: bool | None = None, seed: int = 0, timeout: float | None = None, **kwargs: Any) -> dict:
        return self.student.call(f"{GENERIC}:run_module", seed=seed, timeout=timeout,
                                 cls=self.student.qualify(self.path), init=self.init, state=self.state,
                                 args=list(args), kwargs=kwargs, method=method, calls=calls,
                                 train=self.train if train is None else train, grad_weights=grad_weights)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.run(*args, **kwargs)["outputs"][0]

    def describe(self) -> str:
        return describe_call(self.path, (), self.init)


class Student:
    """The submission under test, as the hidden tests see it (see the module docstring)."""

    def __init__(self, box: Sandbox) -> None:
        self.box = box

    @staticmethod
    def qualify(path: str) -> str:
        """'patches.patchify' -> 'vitcourse.patches.patchify'."""
        return path if path.startswith(weeks.PACKAGE + ".") else f"{weeks.PACKAGE}.{path}"

    def call(self, probe: str, *, timeout: float | None = None, seed: int = 0, **kwargs: Any) -> Any:
        """The low-level call: run ``probe`` ('module:function') in the sandbox with ``kwargs``."""
        return self.box.call(probe, timeout=timeout, seed=seed, **kwargs)

    def fn(self, path: str, *args: Any, timeout: float | None = None, seed: int = 0, **kwargs: Any) -> Any:
        """``path(*args, **kwargs)`` for a function (or class) of the package; its return value."""
        return self.call(f"{GENERIC}:call", timeout=timeout, seed=seed, target=self.qualify(path),
                         args=list(args), kwargs=kwargs)

    def module(self, path: str, init: dict | None = None, state: dict | None = None,
               train: bool = False) -> ModuleRef:
        """``path(**init)`` with ``state`` loaded (strict), in eval mode unless ``train``."""
        return ModuleRef(self, path, init, state, train)

    def probe(self, name: str, *, timeout: float | None = None, seed: int = 0, **kwargs: Any) -> Any:
        """A function of the week's probes ('reverse_task') or the course's ('course_probes.x:y')."""
        target = name if ":" in name else f"week_probes:{name}"
        return self.call(target, timeout=timeout, seed=seed, **kwargs)

    def raises(self, expected: type[BaseException] | tuple[type[BaseException], ...], target: str | ModuleRef,
               *args: Any, **kwargs: Any) -> str:
        """Assert that calling ``target`` (a dotted function/class, or a :class:`ModuleRef` whose
        forward gets ``args``) raises ``expected`` (a subclass counts); return its message."""
        classes, names = _names(expected)
        if isinstance(target, ModuleRef):
            what = f"{target.describe()} called on {', '.join(_short(a) for a in args)}"
            run = lambda: target(*args, **kwargs)
        else:
            what = describe_call(target, args, kwargs)
            run = lambda: self.fn(target, *args, **kwargs)
        try:
            run()
        except StudentFailure as failure:
            if failure.is_a(*classes):
                return failure.reason
            if failure.not_implemented or not failure.mro or failure.type in ("timeout", "crash", "budget"):
                raise  # not implemented, hung or crashed: the reason says it best
            raise AssertionError(f"{what} must raise {names}; it raised {failure.reason}") from None
        raise AssertionError(f"{what} was accepted: it must raise {names}")


# ------------------------------------------------------------------------------ comparisons
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


def rand(*shape: int, seed: int = 0):
    """A standard-normal tensor from its own generator: the same numbers in every run."""
    import torch

    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def randomise(model, seed: int = 0):
    """A reference model with N(0, 0.2) weights and biases and LayerNorm scales N(1, 0.1), in eval
    mode: a library's default initialisation (tiny weights, zero biases, unit norms) would hide
    bugs such as a tanh GELU or a missing bias under the tolerance."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, param in model.named_parameters():
            mean, spread = (1.0, 0.1) if key.endswith("weight") and "norm" in key else (0.0, 0.2)
            param.copy_(mean + spread * torch.randn(param.shape, generator=gen))
    return model.eval()


def state(model) -> dict:
    """A copy of a reference model's state dict, to load into the student's module (strict)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ------------------------------------------------------------------------------ static checks
_SOURCES: dict[str, bytes] = {}


def keep_sources(files: dict[str, bytes]) -> None:
    """The package's sources as they were before any student code ran (the judge calls this
    first): static checks judge the code that was submitted, not a file rewritten while it ran."""
    _SOURCES.clear()
    _SOURCES.update(files)


def source(module: str) -> tuple[str, ast.Module | None]:
    """Read (never import) a module of the submission, for static checks: (text, tree or None)."""
    text = _SOURCES.get(module, b"").decode("utf-8", "replace")
    try:
        return text, ast.parse(text)
    except SyntaxError:
        return text, None


# ------------------------------------------------------------------------------ the submitted notebook
_NOTEBOOK: dict[str, Any] = {}
NO_NOTEBOOK = "no notebook came with this submission"


def keep_notebook(path: Path, why: Path) -> None:
    """The notebook that came with the submission (:data:`vitgrade.judging.judge.NOTEBOOK`), or why none
    did, read before any student code ran (the judge calls this first); parsed on first use."""
    _NOTEBOOK.clear()
    _NOTEBOOK["data"] = path.read_bytes() if path.is_file() else None
    _NOTEBOOK["why"] = why.read_text(errors="replace").strip() if why.is_file() else ""
    _NOTEBOOK["path"] = path


def submitted_notebook(required: bool = True):
    """The notebook submitted with the package (an ``nbformat`` NotebookNode, version 4, saved outputs
    included), as data: nothing in it runs. Missing or unreadable: with ``required`` the calling test fails
    with one line that says why (an AssertionError); without, None."""
    if "node" not in _NOTEBOOK:
        _NOTEBOOK["node"], _NOTEBOOK["problem"] = _parse_notebook(_NOTEBOOK.get("data"), _NOTEBOOK.get("why", ""))
    if _NOTEBOOK["node"] is None and required:
        raise AssertionError(_NOTEBOOK["problem"] + " (this test reads the notebook you submit, with its saved "
                              "outputs)")
    return _NOTEBOOK["node"]


def _parse_notebook(data: bytes | None, why: str):
    import json

    import nbformat

    if data is None:
        return None, why or NO_NOTEBOOK
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, "your notebook could not be read: it is not UTF-8 text"
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"your notebook could not be read: it is not valid JSON ({exc.msg}, line {exc.lineno})"
    try:
        nb = nbformat.reads(text, as_version=4)
        if not isinstance(nb.get("cells"), list):
            raise ValueError("it has no list of cells")
    except Exception as exc:  # noqa: BLE001 - any notebook nbformat cannot read is the student's to fix
        return None, f"your notebook could not be read: it is not a Jupyter notebook ({str(exc).splitlines()[0][:120]})"
    return nb, ""


def week_probes(tests_dir: Path) -> Path | None:
    """The week's probe code next to its hidden tests: ``probes/`` or ``probes.py``."""
    for candidate in (tests_dir / "probes", tests_dir / "probes.py"):
        if candidate.exists():
            return candidate
    return None
