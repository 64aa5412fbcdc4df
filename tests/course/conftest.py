"""The repository's own tests: they check the course, not a student."""

import os

os.environ.setdefault("VIT_SCALE", "smoke")
os.environ.setdefault("MPLBACKEND", "Agg")
