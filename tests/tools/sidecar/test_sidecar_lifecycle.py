"""The sidecar's life: bad configs refused at start, graceful SIGTERM, restarts under a client."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import start_sidecar
from sidecar_testkit import feed_code, python

from conveyor.tools.client import SidecarClient
from conveyor.tools.sidecar.config import ConfigError, parse_config

KNOWN = ["calculator", "python", "search"]


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"limits": {"memory_mb": -1}}, "limits.memory_mb"),
        ({"limits": {"cpu_second": 1}}, "limits.cpu_second"),
        ({"tools": {"pyhton": {}}}, "tools.pyhton"),
        ({"tools": {"python": {"limits": {"nproc": "many"}}}}, "tools.python.limits.nproc"),
        ({"tools": {"python": {"network": "yes"}}}, "tools.python.network"),
        ({"pool": {"warm_workers": 10, "max_workers": 2}}, "pool.warm_workers"),
        ({"isolation": {"hide_paths": "/secret"}}, "isolation.hide_paths"),
        ({"serve": {}}, "serve"),
    ],
)
def test_bad_config_names_the_key(raw: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(key) + ":"):
        parse_config(raw, KNOWN)


def test_config_defaults_and_overrides() -> None:
    config = parse_config(
        {
            "limits": {"cpu_seconds": 2},
            "tools": {"python": {"limits": {"memory_mb": 64}}, "search": {}},
        },
        KNOWN,
    )
    assert set(config.tools) == {"python", "search"}
    assert config.tools["python"].limits.cpu_seconds == 2  # inherited
    assert config.tools["python"].limits.memory_mb == 64  # overridden
    assert config.tools["search"].network and not config.tools["python"].network


def test_serve_refuses_a_bad_config_file(tmp_path: Path) -> None:
    bad = tmp_path / "tools.yaml"
    bad.write_text("tools:\n  python:\n    limits:\n      wall_seconds: 0\n")
    exe = Path(sys.executable).with_name("conveyor-tools")
    run = subprocess.run(
        [str(exe), "serve", "--config", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2
    assert "tools.python.limits.wall_seconds: expected a positive number" in run.stderr


async def test_sigterm_drains_then_cancels(tmp_path: Path) -> None:
    sidecar = start_sidecar(tmp_path / "drain", {"server": {"grace_seconds": 1.0}})
    try:
        async with SidecarClient(sidecar.url) as client:
            quick = await client.open("python")
            await feed_code(quick, "import time\ntime.sleep(0.3)\nprint('quick')")
            slow = await client.open("python")
            await feed_code(slow, "import time\ntime.sleep(30)")
            await asyncio.sleep(0.2)
            t0 = time.monotonic()
            sidecar.proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.2)
            refused = await client.open("python")  # the connection is still open while draining
            await quick.finish()
            outcomes = await asyncio.gather(quick.outcome(), slow.outcome(), refused.outcome())
            elapsed = time.monotonic() - t0
        quick_o, slow_o, refused_o = outcomes
        assert quick_o.content == "quick\n"
        assert slow_o.reason == "shutdown" and "grace period" in slow_o.content, slow_o
        assert refused_o.reason == "shutdown", refused_o
        assert elapsed < 10
        assert sidecar.proc.wait(15) in (0, -signal.SIGTERM)
    finally:
        sidecar.stop(signal.SIGKILL)


async def test_client_reconnects_after_a_restart(tmp_path: Path) -> None:
    first = start_sidecar(tmp_path / "one")
    port = first.port
    client = SidecarClient(first.url, connect_timeout=30)
    await client.connect()
    try:
        assert (await python(client, "print(1)")).content == "1\n"
        hanging = await client.open("python")
        await feed_code(hanging, "import time\ntime.sleep(30)")
        await asyncio.sleep(0.2)
        first.stop(signal.SIGKILL)  # a crash: in-flight work must fail fast, not hang
        lost = await asyncio.wait_for(hanging.outcome(), 5)
        assert lost.kind == "error" and lost.reason == "connection lost", lost
        second = start_sidecar(tmp_path / "two", port=port)
        try:
            outcome = await python(client, "print(2)")
            assert outcome.content == "2\n"
            assert client.connects == 2
        finally:
            second.stop()
    finally:
        await client.close()
