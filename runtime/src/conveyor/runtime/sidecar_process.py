"""The embedded tool sidecar: `conveyor-tools serve` as a child process of the runtime.

Used by `conveyor serve` without `--sidecar`, by the benchmark and by the tests. It listens on a
private Unix socket, dies with its parent (PR_SET_PDEATHSIG), and can be pinned to CPUs so that
tools and the engine do not compete for the same cores when measuring.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _child_setup(cpus: set[int] | None):
    def setup() -> None:
        # Never outlive the runtime, even when it is killed.
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if cpus:
            os.sched_setaffinity(0, cpus)

    return setup


class EmbeddedSidecar:
    """A running sidecar child; ``url`` is what ``SidecarClient`` takes."""

    def __init__(
        self,
        *,
        config: Path | None = None,
        cpus: set[int] | None = None,
        log_level: str = "warning",
    ) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="conveyor-sidecar-")
        self.socket = Path(self._dir.name) / "tools.sock"
        self.url = f"unix:{self.socket}"
        command = [sys.executable, "-m", "conveyor.tools.cli", "serve", "--uds", str(self.socket)]
        command += ["--log-level", log_level]
        if config is not None:
            command += ["--config", str(config)]
        log.info("starting the embedded tool sidecar on %s", self.socket)
        self.process = subprocess.Popen(command, preexec_fn=_child_setup(cpus))  # noqa: PLW1509

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until the sidecar answers ``/readyz`` (its warm pool is up)."""
        deadline = time.monotonic() + timeout
        transport = httpx.HTTPTransport(uds=str(self.socket))
        with httpx.Client(transport=transport, base_url="http://sidecar") as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"the tool sidecar exited with code {self.process.returncode}"
                    )
                try:
                    if client.get("/readyz", timeout=1.0).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        raise RuntimeError(f"the tool sidecar was not ready within {timeout:.0f} s")

    def stop(self, grace: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._dir.cleanup()
