"""A reject is reported as a reject even when the worker had later units still unread.

The race (issue 16): a worker that rejects a unit used to exit at once, with the client's later
units unread in its socket; the sidecar, still writing those units, then lost the channel before
it had read the reject and reported ``crashed: the worker exited`` instead. It showed with the
code under ``/tmp`` (a shared ``/tmp`` in the workers), so this test runs a real sidecar whose
virtualenv and ``conveyor.tools`` source live under ``/tmp``: a venv there whose ``.pth`` puts a
copy of ``tools/src`` first and this checkout's third-party packages after it.
"""

from __future__ import annotations

import asyncio
import compileall
import os
import shutil
import signal
import subprocess
import sysconfig
import tempfile
import time
import venv
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import BASE_CONFIG, TEST_UID_BASE, free_port

from conveyor.tools.client import Outcome, SidecarClient
from conveyor.tools.units import Field

RUNS = 200
BATCH = 8  # calls at once: as many as the pool keeps warm
LATER_UNITS = 40  # sent behind the rejected unit while the sidecar has not read the reject yet
SRC = Path(__file__).parents[3] / "tools" / "src"


@pytest.fixture(scope="module")
def tmp_checkout_sidecar() -> Iterator[str]:
    root = Path(tempfile.mkdtemp(prefix="conveyor-race-", dir="/tmp"))
    try:
        root.chmod(0o755)  # workers run as other uids and import from here
        shutil.copytree(SRC, root / "src", ignore=shutil.ignore_patterns("__pycache__"))
        # Workers run with -B: compile once here so each does not compile every module.
        compileall.compile_dir(root / "src", quiet=1)
        venv.EnvBuilder(with_pip=False, symlinks=True).create(root / "venv")
        site = root / "venv" / "lib" / "python3.11" / "site-packages"
        deps = sysconfig.get_paths()["purelib"]  # starlette, uvicorn... of this checkout's venv
        (site / "conveyor-race.pth").write_text(f"{root / 'src'}\n{deps}\n")
        for path in root.rglob("*"):
            if not path.is_symlink():  # the venv's python links to the real one: leave it be
                path.chmod(0o755 if path.is_dir() else 0o644)
        config = {k: dict(v) for k, v in BASE_CONFIG.items()}
        config["tools"] = {"calculator": {"validate": True}}
        config["pool"].update(warm_workers=BATCH, max_workers=24)
        config["limits"].update(wall_seconds=60)  # a busy host may be slow to refill the pool
        config["isolation"] = {"uid_base": TEST_UID_BASE + 500}  # apart from other test sidecars
        (root / "tools.yaml").write_text(yaml.safe_dump(config))
        port = free_port()
        python = root / "venv" / "bin" / "python"
        command = [str(python), "-m", "conveyor.tools.cli", "serve", "--port", str(port)]
        with (root / "sidecar.log").open("wb") as log:
            proc = subprocess.Popen(
                [*command, "--config", str(root / "tools.yaml")],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=root,
                env={"PATH": os.environ.get("PATH", "")},
            )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(proc, url, root / "sidecar.log")
            applied = httpx.get(url + "/readyz", trust_env=False).json()["isolation"]
            if os.geteuid() == 0:  # only root gives workers a private /tmp to keep from them
                assert any("shared /tmp" in a for a in applied["no network"]), applied
            yield url
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sidecar exited:\n{log.read_text(errors='replace')}")
        try:
            if httpx.get(url + "/readyz", trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"sidecar not ready:\n{log.read_text(errors='replace')}")


async def _rejected_call(client: SidecarClient) -> Outcome:
    inv = await client.open("calculator")
    await inv.feed(Field(("expression",), 5))  # not a string: validated() rejects it
    for n in range(LATER_UNITS):
        if inv.done:
            break
        await inv.feed(Field(("note", n), "x" * 200))
        await asyncio.sleep(0.002)  # a model's pace: the sidecar forwards each as it comes
    await inv.finish()
    return await inv.outcome()


async def _warm(url: str) -> None:
    """Wait for a full pool, so each call's units go to a live worker as they come."""
    async with httpx.AsyncClient(base_url=url, trust_env=False) as http:
        for _ in range(1200):  # a minute at most
            if (await http.get("/readyz")).json()["workers_ready"] >= BATCH:
                return
            await asyncio.sleep(0.05)
    raise AssertionError("the pool did not refill within a minute")


async def test_a_reject_is_never_reported_as_a_crash(tmp_checkout_sidecar: str) -> None:
    async with SidecarClient(tmp_checkout_sidecar) as client:
        outcomes: list[Outcome] = []
        while len(outcomes) < RUNS:
            await _warm(tmp_checkout_sidecar)
            outcomes += await asyncio.gather(*(_rejected_call(client) for _ in range(BATCH)))
    wrong = [o for o in outcomes if o.kind != "reject"]
    assert not wrong, f"{len(wrong)} of {len(outcomes)} rejects were lost: {wrong[:3]}"
    assert all("must be string" in o.content for o in outcomes), outcomes[0]
