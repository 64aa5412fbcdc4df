"""What a hidden test imports: ``from vitgrade.hidden import assert_close, rand, StudentFailure``.

``submitted_notebook()``: the notebook submitted with the package (an nbformat NotebookNode with its
saved outputs), for tasks graded from the report it shows (:attr:`vitgrade.weeks.Week.notebook_tasks`);
read by the judge, never by the student's process. A missing or unreadable one fails the test with a
one-line reason.

``tensor_meta(array)``: what an array the student's code returned was as a torch tensor in the
student's process (dtype, requires_grad, grad_fn, device, contiguity, shape), for promises such
as "float32 features with no graph" (:func:`vitgrade.student.wire.meta`).

The ``student`` fixture needs no import: the judge's plugin provides it. See
:mod:`vitgrade.judging.api` for the API (``student.fn``, ``student.module``, ``student.raises``,
``student.probe``) and ``CONTRIBUTING.md`` for how a week's hidden suite is laid out.
"""

from vitgrade.confine.sandbox import StudentFailure
from vitgrade.judging.api import ModuleRef, Student, assert_close, rand, randomise, source, state, submitted_notebook
from vitgrade.student.wire import meta as tensor_meta

__all__ = ["ModuleRef", "Student", "StudentFailure", "assert_close", "rand", "randomise", "source", "state",
           "submitted_notebook", "tensor_meta"]
