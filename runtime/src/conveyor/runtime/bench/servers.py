"""The processes a benchmark run starts: the tool sidecar, `conveyor serve`, vLLM's own server.

On the CPU build every engine gets the same cores through ``VLLM_CPU_OMP_THREADS_BIND`` and the
sidecar gets the others, so tools never wait for a time slice behind vLLM's spinning threads.
Engines run one at a time: a server is stopped before the next one starts.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from conveyor.runtime.engine import cpu_build

MAX_MODEL_LEN = 4096


@dataclass(frozen=True)
class Pinning:
    engine: list[int]
    tools: list[int]
    applied: bool
    servers: set[int]  # affinity of the server processes (API process and engine core)

    def describe(self) -> str:
        if not self.applied:
            return "no pinning (GPU build or a single core)"
        return (
            f"vLLM engine threads (VLLM_CPU_OMP_THREADS_BIND) and the serving process on core(s) "
            f"{','.join(map(str, self.engine))}; tool sidecar, search backend and benchmark "
            f"client on core(s) {','.join(map(str, self.tools))}"
        )


def plan_pinning() -> Pinning:
    """As `conveyor serve` does: the last core for tools, the others for the engine."""
    cores = sorted(os.sched_getaffinity(0))
    if not cpu_build() or len(cores) < 2:
        return Pinning(cores, cores, False, set(cores))
    return Pinning(cores[:-1], cores[-1:], True, set(cores[:-1]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """An HTTP server child process with its log in a file; stopped on ``stop``."""

    def __init__(
        self, name: str, command: list[str], env: dict[str, str], log: Path, cores: set[int]
    ) -> None:
        self.name = name
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                # The serving process (HTTP, detokenizing, parsing) stays off the tool cores:
                # left floating, it landed there and a 0.05 s tool warm-up took 0.5 s during
                # decoding. Both systems' servers are placed alike.
                preexec_fn=lambda: os.sched_setaffinity(0, cores),  # noqa: PLW1509
            )

    def wait(self, path: str, timeout: float = 900.0) -> None:
        """Until ``path`` answers 200; the process is stopped if it never does."""
        try:
            self._wait(path, timeout)
        except BaseException:
            self.stop()
            raise

    def _wait(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{tail}")
            try:
                if httpx.get(self.base_url + path, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"{self.name} was not ready within {timeout:.0f} s (log: {self.log})")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def engine_env(pinning: Pinning) -> dict[str, str]:
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    if pinning.applied:
        env["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(map(str, pinning.engine))
    env.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    return env


def start_conveyor(model: str, sidecar_url: str, pinning: Pinning, log: Path) -> Server:
    """`conveyor serve` with replay allowed, on the benchmark's sidecar."""
    command = [
        sys.executable, "-m", "conveyor.runtime.cli", "serve", "--model", model,
        "--sidecar", sidecar_url, "--allow-replay", "--max-model-len", str(MAX_MODEL_LEN),
        "--tool-timeout", "120", "--max-tokens", "2048",
    ]  # fmt: skip
    server = Server("conveyor serve", command, engine_env(pinning), log, pinning.servers)
    server.wait("/ready")
    return server


def start_vllm(model: str, pinning: Pinning, log: Path) -> Server:
    """vLLM's own OpenAI server with its hermes tool parser: the peer system.

    The same engine arguments as `conveyor serve` on this build (eager mode on the CPU, prefix
    caching on, the same context length and KV-cache size).
    """
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
        "--tool-call-parser", "hermes", "--enable-auto-tool-choice",
        "--enable-prefix-caching", "--max-model-len", str(MAX_MODEL_LEN),
        "--host", "127.0.0.1", "--uvicorn-log-level", "warning",
    ]  # fmt: skip
    if cpu_build():
        command.append("--enforce-eager")
    server = Server("vllm api_server", command, engine_env(pinning), log, pinning.servers)
    server.wait("/health")
    return server
