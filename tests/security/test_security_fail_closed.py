"""Fail closed: a sandbox that cannot be set up means no tool served, and readiness says why.

A real `conveyor-tools serve` runs where user namespaces cannot be created: inside a user
namespace whose ``max_user_namespaces`` is 0, as a cluster without user-namespace support would
refuse them. No engine is needed.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from conveyor.tools.client import SidecarClient
from conveyor.tools.units import Whole


def serve(tmp_path: Path, config: object, wrap: list[str]) -> tuple[subprocess.Popen, str, Path]:
    path = tmp_path / "tools.yaml"
    path.write_text(yaml.safe_dump(config))
    log = tmp_path / "sidecar.log"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "conveyor.tools.cli", "serve", "--port", str(port),
               "--config", str(path)]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen([*wrap, *command], stdout=out, stderr=subprocess.STDOUT)
    return process, f"http://127.0.0.1:{port}", log


def readyz(url: str, process: subprocess.Popen, settled) -> httpx.Response:
    """``/readyz`` once ``settled(body)`` holds (the pool has decided)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "the sidecar exited"
        try:
            response = httpx.get(f"{url}/readyz", timeout=2.0)
            if settled(response.json()):
                return response
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("the sidecar never settled")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


NO_USER_NAMESPACES = [
    "unshare", "--user", "--map-root-user", "sh", "-c",
    'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"', "sh",
]  # fmt: skip


async def test_tools_whose_sandbox_cannot_be_set_up_are_not_served(tmp_path: Path) -> None:
    config = {"tools": ["python", "calculator"], "pool": {"warm_workers": 1}}
    process, url, _ = serve(tmp_path, config, NO_USER_NAMESPACES)
    try:
        response = readyz(url, process, lambda body: body["unavailable"])
        body = response.json()
        assert response.status_code == 503 and body["ready"] is False, body
        assert set(body["unavailable"]) == {"python", "calculator"}, body
        assert "cannot create user namespaces" in body["unavailable"]["python"], body
        async with SidecarClient(url) as client:
            inv = await client.open("calculator")
            await inv.feed(Whole({"expression": "6 * 7"}))
            await inv.finish()
            outcome = await asyncio.wait_for(inv.outcome(), 30)
        assert outcome.kind == "error", outcome
        assert outcome.content.startswith("unavailable: cannot create user namespaces"), outcome
    finally:
        stop(process)


@pytest.mark.parametrize("opt_out", ["none", False])
def test_isolation_none_runs_tools_and_warns_at_every_start(tmp_path: Path, opt_out) -> None:
    config = {"tools": ["calculator"], "pool": {"warm_workers": 1}, "isolation": opt_out}
    process, url, log = serve(tmp_path, config, NO_USER_NAMESPACES)
    try:
        body = readyz(url, process, lambda body: body["ready"]).json()
        assert body["unavailable"] == {}, body
        assert all(
            "no isolation (isolation: none, for local development only)" in applied
            for applied in body["isolation"].values()
        ), body
        assert "isolation: none: tools run WITHOUT a sandbox" in log.read_text()
    finally:
        stop(process)
