"""nbgrader configuration for the course (the course directory is this folder).

Everything week-specific comes from the course registry (grading/vitgrade/weeks.py), so a new
week needs no edit here. The settings that matter, and why (see the nbgrader notes):
"""

import os
from pathlib import Path

from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.preprocessors import AssignLatePenalties, CheckCellMetadata, IgnorePattern, LimitOutput, SaveAutoGrades

from vitgrade import settings, weeks
from vitgrade.autograde import nbtrust
from vitgrade.confine import isolate

c = get_config()  # noqa: F821 - provided by nbgrader

# This process decides and records grades: no process of the same uid (a student's kernel)
# may open its file descriptors or memory through /proc. Its verdict pipe is not inherited.
isolate.protect_self()
if os.environ.get(nbtrust.VERDICT_FD_ENV):
    os.set_inheritable(int(os.environ[nbtrust.VERDICT_FD_ENV]), False)

c.CourseDirectory.course_id = "vit-course"
c.CourseDirectory.root = str(Path(__file__).resolve().parent)

# Autograde copies every non-notebook file of source/<week>/ over the student's copy; without
# this, a student's own modules would be replaced by the stubs and graded as unimplemented.
c.Autograde.exclude_overwriting = {
    w.assignment: [f"{weeks.PACKAGE}/{m}" for m in w.modules + w.support_modules]
    for w in weeks.WEEKS.values()
}

# Hidden tests live in source/<week>/hidden_tests/. They must never reach release/ or
# feedback/, but autograde must still copy them, so the ignore list is set per command
# (a global CourseDirectory.ignore would stop autograde from copying them too).
# Autograde must not copy them into the student's folder either (where the student's kernel
# could read them): the trusted verdict below reads them from source/ directly.
_ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "hidden_tests"]
c.CourseDirectory.ignore = _ignore
c.GenerateAssignmentApp.CourseDirectory.ignore = _ignore
c.GenerateFeedbackApp.CourseDirectory.ignore = _ignore

# The score is the judge's verdict, computed outside the student's kernel from a snapshot taken
# before the kernel ran; nothing the kernel prints in a graded cell survives (vitgrade.nbtrust).
c.Autograde.autograde_preprocessors = [
    nbtrust.TrustedExecute,  # nbgrader's Execute + snapshot, jailed kernel, time budget
    IgnorePattern,
    ClearMetadataPreprocessor,
    LimitOutput,
    nbtrust.TrustedVerdict,  # overwrites every graded task cell with the verdict
    SaveAutoGrades,
    AssignLatePenalties,
    CheckCellMetadata,
]

# A student's edits to the notebook never decide a score: each submitted notebook is read through
# vitgrade.autograde.repair against the release notebook before nbgrader's own checks. A missing,
# pasted, split, merged or retyped graded cell is put back (nbgrader would score a deleted cell 0,
# and drop a student with a duplicated one); an unreadable notebook (not JSON, too large) becomes
# the release notebook. Each repair is a line in the feedback and in the verdict.
c.Autograde.exporter_class = nbtrust.RepairingExporter

# Per notebook cell in the student's kernel (the hidden suite no longer runs there), and a
# budget for the whole notebook (VITGRADE_CELL_TIMEOUT, VITGRADE_NOTEBOOK_BUDGET).
c.Execute.timeout = settings.cell_timeout()
# A graded cell with any stderr output scores 0; library warnings must not cost points.
c.IgnorePattern.pattern = r"(?s).*(Warning|warn\().*"
