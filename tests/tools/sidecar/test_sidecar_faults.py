"""Fault injection: each hostile invocation ends as an error or a harmless result, while a
normal invocation running at the same time completes, and the pool replaces the worker."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from conftest import SECRET, TEST_UID_BASE, SidecarProcess
from sidecar_testkit import feed_code, python

from conveyor.tools.client import Outcome, SidecarClient

NORMAL = "total = sum(range(1000))\nprint(total)"


async def alongside(sidecar: SidecarProcess, hostile: str) -> Outcome:
    """Run ``hostile`` and a normal call concurrently; the normal one must be unharmed."""
    async with SidecarClient(sidecar.url) as client:
        bad, good = await asyncio.gather(python(client, hostile), python(client, NORMAL))
    assert (good.kind, good.content, good.is_error) == ("result", "499500\n", False), good
    return bad


def worker_uid_processes() -> list[int]:
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if TEST_UID_BASE <= entry.stat().st_uid < TEST_UID_BASE + 1000:
                    pids.append(int(entry.name))
            except FileNotFoundError:
                pass
    return pids


async def test_infinite_loop_hits_the_cpu_limit(sidecar: SidecarProcess) -> None:
    before = sidecar.metrics()['conveyor_sidecar_limit_kills_total{limit="cpu",tool="python"}']
    bad = await alongside(sidecar, "while True: pass")
    assert bad.kind == "error" and bad.reason == "cpu limit", bad
    after = sidecar.metrics()['conveyor_sidecar_limit_kills_total{limit="cpu",tool="python"}']
    assert after == before + 1


async def test_sleeping_forever_hits_the_wall_clock(sidecar: SidecarProcess) -> None:
    bad = await alongside(sidecar, "import time\ntime.sleep(3600)")
    assert bad.kind == "error" and bad.reason == "timeout", bad


async def test_memory_bomb(sidecar: SidecarProcess) -> None:
    bad = await alongside(sidecar, "blocks = []\nwhile True: blocks.append(bytearray(1 << 24))")
    assert bad.is_error
    assert bad.reason == "memory limit" or "MemoryError" in bad.content, bad


async def test_fork_bomb_is_contained_and_cleaned_up(sidecar: SidecarProcess) -> None:
    if os.geteuid() != 0:
        pytest.skip("counting what is left by uid needs workers of their own uid (root)")
    bad = await alongside(sidecar, "import os\nwhile True: os.fork()")
    assert bad.is_error, bad
    # Every process left with a worker uid belongs to a live pool worker (its sandbox's
    # supervisor, init and worker): the bomb's children are gone.
    for _ in range(50):
        await asyncio.sleep(0.1)
        alive = sidecar.metrics()["conveyor_sidecar_workers_alive"]
        if len(worker_uid_processes()) <= 3 * alive:
            break
    else:
        raise AssertionError(f"{len(worker_uid_processes())} worker-uid processes left")


async def test_huge_output_is_truncated(sidecar: SidecarProcess) -> None:
    bad = await alongside(sidecar, "print('x' * 10_000_000)")
    assert bad.kind == "result"
    assert len(bad.content) < 70_000 and "output truncated" in bad.content


async def test_worker_killing_itself(sidecar: SidecarProcess) -> None:
    bad = await alongside(sidecar, "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)")
    assert bad.kind == "error" and bad.content.startswith("crashed: signal 11"), bad


async def test_worker_killed_from_outside_mid_invocation(sidecar: SidecarProcess) -> None:
    crashes = sidecar.metrics()['conveyor_sidecar_worker_crashes_total{tool="python"}']
    async with SidecarClient(sidecar.url) as client:
        victim = await client.open("python")
        await feed_code(victim, "import os\npid = os.getpid()\nimport time\ntime.sleep(30)")
        await asyncio.sleep(0.5)
        busy = [p for p in worker_uid_processes() if len(os.listdir(f"/proc/{p}/task")) > 1]
        assert busy, "the sleeping worker runs a statement thread"
        for pid in busy:
            os.kill(pid, signal.SIGKILL)
        normal = await python(client, NORMAL)
        outcome = await asyncio.wait_for(victim.outcome(), 5)
    assert outcome.kind == "error" and outcome.content == "crashed: signal 9", outcome
    assert normal.content == "499500\n"
    assert sidecar.metrics()['conveyor_sidecar_worker_crashes_total{tool="python"}'] > crashes


async def test_environment_is_empty(sidecar: SidecarProcess) -> None:
    bad = await alongside(sidecar, "import os\nprint(dict(os.environ))")
    assert bad.content == "{}\n"


async def test_sidecar_environment_is_out_of_reach(sidecar: SidecarProcess) -> None:
    # The worker's parent is its sandbox's init (pid 1); the sidecar is not in its /proc.
    code = "import os\nprint(os.getppid())\nprint(open(f'/proc/{os.getppid()}/environ').read())"
    bad = await alongside(sidecar, code)
    assert bad.content.startswith("1\n") and "PermissionError" in bad.content, bad
    assert SECRET not in bad.content, bad


async def test_service_account_token_is_hidden(sidecar: SidecarProcess, fake_secrets: Path) -> None:
    token = fake_secrets / "kubernetes.io" / "serviceaccount" / "token"
    assert token.read_text() == SECRET  # there, and world-readable, outside the worker
    for path in (token, Path("/var/run/secrets/kubernetes.io/serviceaccount/token")):
        bad = await alongside(sidecar, f"print(open({str(path)!r}).read())")
        assert bad.is_error and SECRET not in bad.content, bad


async def test_sidecar_config_is_hidden(sidecar: SidecarProcess) -> None:
    assert SECRET in sidecar.config_path.read_text()
    bad = await alongside(sidecar, f"print(repr(open({str(sidecar.config_path)!r}).read()))")
    assert SECRET not in bad.content, bad


# A checkout or virtualenv under /tmp (a CI clone) is shown read-only inside the private /tmp.
PYTHON_UNDER_TMP = any(
    os.path.realpath(p).startswith("/tmp/") for p in (sys.prefix, *sys.path) if p
)


async def test_private_tmp(sidecar: SidecarProcess) -> None:
    bad = await alongside(sidecar, "import os\nprint(sorted(os.listdir('/tmp')))")
    if PYTHON_UNDER_TMP:  # only the directories that lead to the Python installation
        assert "conveyor-sidecar" not in bad.content and "tools.yaml" not in bad.content, bad
        return
    assert bad.content == "[]\n", bad  # nothing of the host's /tmp, not even the sidecar's config


async def test_no_network(sidecar: SidecarProcess) -> None:
    bad = await alongside(
        sidecar, f"import socket\nsocket.create_connection(('127.0.0.1', {sidecar.port}), 2)"
    )
    assert bad.is_error and "OSError" in bad.content or "unreachable" in bad.content, bad


async def test_pool_recovers(sidecar: SidecarProcess) -> None:
    """After all of the above, the pool is warm again and serves normally."""
    async with SidecarClient(sidecar.url) as client:
        outcomes = await asyncio.gather(*(python(client, NORMAL) for _ in range(4)))
    assert all(o.content == "499500\n" for o in outcomes)
    await asyncio.sleep(1.0)
    metrics = sidecar.metrics()
    assert metrics["conveyor_sidecar_workers_ready"] >= 2
    assert (
        sum(v for k, v in metrics.items() if k.startswith("conveyor_sidecar_invocations_in_flight"))
        == 0
    )
