"""nbgrader configuration for the course (the course directory is this folder).

Everything week-specific comes from the course registry (grading/vitgrade/weeks.py), so a new
week needs no edit here. The settings that matter, and why (see the nbgrader notes):
"""

from pathlib import Path

from vitgrade import weeks

c = get_config()  # noqa: F821 - provided by nbgrader

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
_ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "hidden_tests"]
c.GenerateAssignmentApp.CourseDirectory.ignore = _ignore
c.GenerateFeedbackApp.CourseDirectory.ignore = _ignore

# The first graded cell runs the whole hidden suite (about 10 s); the default is 30 s a cell.
c.Execute.timeout = 300
# A graded cell with any stderr output scores 0; library warnings must not cost points.
c.IgnorePattern.pattern = r"(?s).*(Warning|warn\().*"
