"""What a hidden test imports: ``from vitgrade.hidden import assert_close, rand, StudentFailure``.

The ``student`` fixture needs no import: the judge's plugin provides it. See
:mod:`vitgrade.judging.api` for the API (``student.fn``, ``student.module``, ``student.raises``,
``student.probe``) and ``CONTRIBUTING.md`` for how a week's hidden suite is laid out.
"""

from vitgrade.confine.sandbox import StudentFailure
from vitgrade.judging.api import ModuleRef, Student, assert_close, rand, randomise, source, state

__all__ = ["ModuleRef", "Student", "StudentFailure", "assert_close", "rand", "randomise", "source", "state"]
