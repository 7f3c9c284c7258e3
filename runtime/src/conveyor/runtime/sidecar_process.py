"""The embedded tool sidecar: `conveyor-tools serve` as a supervised child process of the runtime.

Used by `conveyor serve` without `--sidecar`, by the benchmark and by the tests. It listens on a
private Unix socket, dies with its parent (PR_SET_PDEATHSIG), and can be pinned to CPUs so that
tools and the engine do not compete for the same cores when measuring.

The child gets an allow-listed environment: the runtime's own may hold secrets (API keys, cloud
credentials) that tool code must never be able to reach, even through its parent.

Once it has been ready, a watcher thread restarts it with exponential backoff whenever it exits,
on the same socket, so the runtime's ``SidecarClient`` (which reconnects by itself) serves tool
calls again within seconds. Calls in flight at the moment of the crash end with an error outcome
(the connection drops); every restart is counted in ``conveyor_sidecar_restarts_total``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import httpx
from prometheus_client import Counter

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1

# What the sidecar needs to start Python and find its packages; nothing else of the runtime's
# environment reaches it (its workers start with an empty one of their own).
ENV_ALLOWED = frozenset(
    {
        "PATH",
        "PYTHONPATH",
        "VIRTUAL_ENV",
        "LANG",
        "LC_ALL",
        "LC_CTYPE",
        "TZ",
        "TMPDIR",
    }
)

RESTARTS = Counter(
    "conveyor_sidecar_restarts_total",
    "Times the runtime restarted its embedded tool sidecar after it exited.",
)


def sidecar_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The embedded sidecar's environment: the allow-listed variables of ``environ``."""
    return {key: value for key, value in environ.items() if key in ENV_ALLOWED}


def _child_setup(cpus: set[int] | None):
    def setup() -> None:
        # Never outlive the runtime, even when it is killed.
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if cpus:
            os.sched_setaffinity(0, cpus)

    return setup


class EmbeddedSidecar:
    """A running sidecar child; ``url`` is what ``SidecarClient`` takes."""

    # What a call cut off by the sidecar's death reads (``SidecarClient(lost_note=...)``).
    lost_note = "the tool service restarted (it is restarted automatically); retry the call"

    def __init__(
        self,
        *,
        config: Path | None = None,
        cpus: set[int] | None = None,
        log_level: str = "warning",
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        stable_after: float = 60.0,
    ) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="conveyor-sidecar-")
        self.socket = Path(self._dir.name) / "tools.sock"
        self.url = f"unix:{self.socket}"
        self._command = [
            sys.executable, "-m", "conveyor.tools.cli", "serve", "--uds", str(self.socket),
            "--log-level", log_level,
        ]  # fmt: skip
        if config is not None:
            self._command += ["--config", str(config)]
        self._cpus = cpus
        self._backoff = (backoff_initial, backoff_max)
        self._stable_after = stable_after  # up this long: the next crash starts a fresh backoff
        self._lock = threading.Lock()  # a restart and ``stop`` never interleave
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self.restarts = 0
        log.info("starting the embedded tool sidecar on %s", self.socket)
        self.process = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: PLW1509 (no threads run in the child before exec)
            self._command, env=sidecar_env(os.environ), preexec_fn=_child_setup(self._cpus)
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until the sidecar answers ``/readyz`` (its warm pool is up); from then on it is
        restarted whenever it exits. A sidecar that exits before it is first ready is an error
        (a bad ``tools.yaml``, say), not something a restart would mend."""
        deadline = time.monotonic() + timeout
        transport = httpx.HTTPTransport(uds=str(self.socket))
        with httpx.Client(transport=transport, base_url="http://sidecar") as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"the tool sidecar exited with code {self.process.returncode}"
                    )
                # Not before the socket exists: httpx leaks the socket of a failed UDS connect.
                if not self.socket.exists():
                    time.sleep(0.1)
                    continue
                try:
                    if client.get("/readyz", timeout=1.0).status_code == 200:
                        self._supervise()
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        raise RuntimeError(f"the tool sidecar was not ready within {timeout:.0f} s")

    def _supervise(self) -> None:
        if self._watcher is None:
            self._watcher = threading.Thread(
                target=self._watch, name="sidecar-supervisor", daemon=True
            )
            self._watcher.start()

    def _watch(self) -> None:
        delay = self._backoff[0]
        while True:
            started = time.monotonic()
            code = self.process.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - started >= self._stable_after:
                delay = self._backoff[0]
            log.warning(
                "the embedded tool sidecar exited with code %s; restarting it in %.1f s",
                code,
                delay,
            )
            if self._stopping.wait(delay):
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                # A killed server leaves its socket file; a new one must be able to bind.
                self.socket.unlink(missing_ok=True)
                self.process = self._spawn()
                self.restarts += 1
                RESTARTS.inc()
            delay = min(self._backoff[1], delay * 2)

    def stop(self, grace: float = 10.0) -> None:
        with self._lock:
            self._stopping.set()
            process = self.process
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._watcher is not None:
            self._watcher.join(grace)
        self._dir.cleanup()
