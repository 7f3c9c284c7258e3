"""Per-thread capture of ``sys.stdout`` / ``sys.stderr``.

Each python invocation runs its statements on its own thread; ``contextlib.redirect_stdout``
swaps a process-wide object and would mix the output of concurrent invocations, so writes
are routed by the writing thread instead.
"""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

_local = threading.local()
_lock = threading.Lock()


class _Router(io.TextIOBase):
    def __init__(self, which: str, fallback: TextIO) -> None:
        self._which = which
        self.fallback = fallback

    def write(self, s: str) -> int:
        target: io.StringIO | None = getattr(_local, self._which, None)
        if target is None:
            return self.fallback.write(s)
        return target.write(s)

    def flush(self) -> None:
        if getattr(_local, self._which, None) is None:
            self.fallback.flush()

    def writable(self) -> bool:
        return True


def _install() -> None:
    # Re-checked on every use: a test runner may have swapped the streams since.
    with _lock:
        if not isinstance(sys.stdout, _Router):
            sys.stdout = _Router("stdout", sys.stdout)
        if not isinstance(sys.stderr, _Router):
            sys.stderr = _Router("stderr", sys.stderr)


@contextmanager
def captured(stdout: io.StringIO, stderr: io.StringIO) -> Iterator[None]:
    """Send this thread's writes to ``sys.stdout``/``sys.stderr`` into the given buffers."""
    _install()
    _local.stdout, _local.stderr = stdout, stderr
    try:
        yield
    finally:
        _local.stdout = _local.stderr = None
