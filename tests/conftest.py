"""Session-wide real parts: the tiny model, one vLLM engine, one running Conveyor server."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
import yaml
from process_testkit import free_port, wait_http

# Small engine on a small machine; set before vLLM is imported anywhere.
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded default model, built fresh for this session (about 5 s)."""
    from conveyor.runtime.model import build_tiny

    return build_tiny(tmp_path_factory.mktemp("models") / "tiny")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def engine(tiny_model: Path) -> AsyncIterator[object]:
    """One real vLLM engine for the whole session (about 20-35 s to start on the CPU).

    Tests that use it run on the session event loop: ``pytest.mark.asyncio(loop_scope="session")``.
    """
    from conveyor.runtime.engine import Engine, EngineOptions

    engine = Engine.start(EngineOptions(model=str(tiny_model), max_model_len=4096))
    yield engine
    engine.shutdown()


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class ToolSidecar:
    """A real `conveyor-tools serve` on a TCP port; tests may stop and restart it."""

    def __init__(self, config: Path, env: dict[str, str], cores: set[int] | None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._command = [
            sys.executable, "-m", "conveyor.tools.cli", "serve", "--port", str(self.port),
            "--config", str(config), "--log-level", "warning",
        ]  # fmt: skip
        self._env = env
        self._cores = cores
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        cores = self._cores
        self.process = subprocess.Popen(
            self._command,
            env=self._env,
            preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None,
        )
        wait_http(f"{self.url}/readyz", self.process, 60)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None


@dataclass
class RunningServer:
    base_url: str
    sidecar: ToolSidecar
    database: Path

    @property
    def sidecar_url(self) -> str:
        return self.sidecar.url


@pytest.fixture(scope="session")
def conveyor_server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """`conveyor serve` on the tiny model, with a real external `conveyor-tools serve` beside it
    (the Kubernetes layout): python, sqlite on a real database, calculator with schema
    validation (early aborts), and the planner."""
    from conveyor.runtime.cores import core_split

    root = tmp_path_factory.mktemp("server")
    # Workers see a private /tmp and, under root, run as their own uid: the database lives
    # outside /tmp and is readable by others.
    shared = Path(tempfile.mkdtemp(prefix="conveyor-test-db-", dir="/run"))
    shared.chmod(0o755)
    database = shared / "shop.db"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, city TEXT, total REAL)")
        db.executemany(
            "INSERT INTO orders (city, total) VALUES (?, ?)",
            [("Berlin", 10.0), ("Paris", 20.5), ("Berlin", 4.5)],
        )
    database.chmod(0o644)
    config = root / "tools.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "tools": {
                    "python": {},
                    "calculator": {"validate": True},
                    "sqlite": {"config": {"database": str(database)}},
                    "planner": {},
                },
                "limits": {"wall_seconds": 20},
                "pool": {"warm_workers": 8},
            }
        )
    )
    # As `conveyor serve` does with its embedded sidecar: engine threads and tools on different
    # cores, or vLLM's spinning threads starve the tools.
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    split = core_split()
    if split is not None:
        env["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(map(str, split[0]))
    sidecar = ToolSidecar(config, env, split[1] if split else None)
    port = free_port()
    runtime = None
    try:
        sidecar.start()
        runtime = subprocess.Popen(
            [sys.executable, "-m", "conveyor.runtime.cli", "serve", "--model", str(tiny_model),
             "--sidecar", sidecar.url, "--allow-replay", "--port", str(port),
             "--max-model-len", "4096", "--tool-timeout", "30"],
            env=env,
        )  # fmt: skip
        base_url = f"http://127.0.0.1:{port}"
        wait_http(f"{base_url}/ready", runtime, 600)  # engine start is slow on a busy machine
        yield RunningServer(base_url, sidecar, database)
    finally:
        if runtime is not None:
            stop(runtime)
        sidecar.stop()
        shutil.rmtree(shared, ignore_errors=True)
    # uvicorn would re-raise SIGTERM and kill the process before the engine is shut down; the
    # server handles it itself and exits cleanly once everything has stopped.
    assert runtime.returncode == 0, f"conveyor serve exited with {runtime.returncode} on SIGTERM"


@pytest.fixture(scope="session")
def vllm_peer(tiny_model: Path) -> Iterator[str]:
    """vLLM's own OpenAI server on the tiny model, as `conveyor serve` runs it (hermes tool
    parser, same context, same engine cores): the reference for the parity tests."""
    from conveyor.runtime.cores import core_split

    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    split = core_split()
    if split is not None:
        env["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(map(str, split[0]))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny_model),
         "--port", str(port), "--host", "127.0.0.1", "--max-model-len", "4096",
         "--enforce-eager", "--tool-call-parser", "hermes", "--enable-auto-tool-choice"],
        env=env,
    )  # fmt: skip
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_http(f"{base_url}/health", process, 600)
        yield base_url
    finally:
        stop(process)
