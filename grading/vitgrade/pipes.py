"""A private pipe whose reading end is drained by a thread, so the writer never blocks on a full pipe.

Verdicts travel this way (judge -> grader, nbgrader -> orchestrator): through a descriptor only the
two processes hold, never through a file with a predictable name.
"""

from __future__ import annotations

import os
import threading


class PipeReader:
    """``fd`` is the writing end to hand over (``pass_fds``/``SCM_RIGHTS``); :meth:`read` the result."""

    def __init__(self) -> None:
        read_fd, self.fd = os.pipe()
        self._chunks: list[bytes] = []
        self._thread = threading.Thread(target=self._drain, args=(read_fd,), daemon=True)
        self._thread.start()

    def _drain(self, read_fd: int) -> None:
        with os.fdopen(read_fd, "rb") as pipe:
            while chunk := pipe.read(65536):
                self._chunks.append(chunk)

    def close_writer(self) -> None:
        """Close our copy of the writing end (after handing it to the writer)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def read(self, timeout: float = 10.0) -> bytes:
        """Everything written, once every writer has closed its end (or ``timeout`` passed)."""
        self.close_writer()
        self._thread.join(timeout)
        return b"".join(self._chunks)
