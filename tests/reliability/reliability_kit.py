"""Helpers for the chaos tests: a `conveyor serve` of their own, metrics, process trees."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from process_testkit import free_port, metric

from conveyor.runtime.soak.mix import tool_call
from conveyor.runtime.soak.processes import ProcessSample, sample

SECRET = "CONVEYOR_TEST_SECRET"  # set in the server's environment; the sidecar must not see it


def wait_until(condition: Callable[[], Any], limit: float, what: str, every: float = 0.1) -> Any:
    """Poll ``condition`` until it is truthy; ``limit`` only guards against a hang."""
    deadline = time.monotonic() + limit
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {limit:.0f} s: {what}")
        time.sleep(every)


def nothing_in_flight(base_url: str) -> bool:
    return (
        metric(base_url, "vllm:num_requests_running") == 0
        and metric(base_url, "conveyor_sidecar_invocations_in_flight") == 0
    )


def replayed(model: str, turns: list[str], **extra: Any) -> dict[str, Any]:
    """A chat request body whose assistant rounds are replayed."""
    return {
        "model": model,
        "messages": [{"role": "user", "content": "go"}],
        "conveyor": {"replay": turns},
        **extra,
    }


def python_call(code: str) -> str:
    return tool_call("python", {"code": code})


def tool_contents(response: httpx.Response) -> list[str]:
    messages = response.json()["conveyor"]["messages"]
    return [m["content"] for m in messages if m["role"] == "tool"]


class Serve:
    """`conveyor serve` with its embedded sidecar (python, validated calculator), as a child
    process this test may kill; its log goes to a file shown when it fails to start."""

    def __init__(self, model: Path, root: Path, *args: str) -> None:
        config = root / "tools.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "tools": {"python": {}, "calculator": {"validate": True}},
                    "limits": {"wall_seconds": 30},
                    "pool": {"warm_workers": 8},
                    # Workers of a root sidecar run as uids from `uid_base`, and a worker's exit
                    # kills every process of its uid: a range of our own avoids other sidecars.
                    "isolation": {"uid_base": 300_000 + (os.getpid() % 4000) * 200},
                }
            )
        )
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = root / "serve.log"
        command = [
            sys.executable, "-m", "conveyor.runtime.cli", "serve", "--model", str(model),
            "--tools-config", str(config), "--allow-replay", "--port", str(self.port),
            "--max-model-len", "4096", "--tool-timeout", "30", *args,
        ]  # fmt: skip
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                command, env={**os.environ, SECRET: "hunter2"}, stdout=out, stderr=out
            )
        try:
            wait_until(self._ready, 540, "the server is ready", every=0.5)
        except BaseException:
            self.stop()
            raise
        self.model = httpx.get(f"{self.base_url}/v1/models").json()["data"][0]["id"]

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"conveyor serve exited with {self.process.returncode}:\n{tail}")
        try:
            return httpx.get(f"{self.base_url}/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def processes(self) -> list[ProcessSample]:
        return sample({self.process.pid})

    def pids(self, role: str) -> list[int]:
        return [s.pid for s in self.processes() if s.role == role]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
