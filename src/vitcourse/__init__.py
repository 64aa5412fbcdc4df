"""vitcourse: the student package of the Vision Transformers course.

Each week adds modules here. In `src/vitcourse/` (the copy students edit) every
exercise is a stub that raises ``NotImplementedError`` naming its week and task;
`solutions/vitcourse/` holds the reference the stubs are generated from.
"""

from vitcourse.scale import SCALE, Scale, scale_banner

__all__ = ["SCALE", "Scale", "scale_banner"]
