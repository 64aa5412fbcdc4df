"""The one switch between SMOKE and FULL scale.

Every notebook, test and training script reads the scale from the environment
variable ``VIT_SCALE``:

* ``smoke`` (default): CPU, offline, seconds to minutes. This is what CI runs.
* ``full``: the real experiment (GPU, full datasets, the seed's success criteria).

Per-experiment sizes live next to the experiment as ``pick(smoke=..., full=...)``
so a reader sees both numbers side by side.
"""

from __future__ import annotations

import os
from enum import Enum
from typing import TypeVar

T = TypeVar("T")

ENV_VAR = "VIT_SCALE"


class Scale(str, Enum):
    SMOKE = "smoke"
    FULL = "full"

    @classmethod
    def from_env(cls) -> Scale:
        raw = os.environ.get(ENV_VAR, cls.SMOKE.value).strip().lower()
        try:
            return cls(raw)
        except ValueError:
            raise ValueError(f"{ENV_VAR}={raw!r}: expected 'smoke' or 'full'") from None

    def pick(self, *, smoke: T, full: T) -> T:
        """Return the value for this scale, e.g. ``SCALE.pick(smoke=200, full=50_000)``."""
        return smoke if self is Scale.SMOKE else full


SCALE = Scale.from_env()


def scale_banner() -> str:
    """One line for the top of a notebook saying which scale is running and how to change it."""
    other = Scale.FULL if SCALE is Scale.SMOKE else Scale.SMOKE
    return (
        f"Scale: {SCALE.value.upper()} (set {ENV_VAR}={other.value} before starting Jupyter "
        f"for the {other.value.upper()} run)"
    )
