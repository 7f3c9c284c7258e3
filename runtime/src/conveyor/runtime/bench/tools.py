"""The benchmark's tool side: one sidecar configuration, and running a call on the sidecar.

The same sidecar process (pinned to the tool cores) serves ``conveyor serve`` (``--sidecar``),
the peer's client-side agent loop, and the measurement of each unit's tool time alone, so every
system runs the same tools under the same isolation and limits.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.runtime.calls import units_of
from conveyor.tools.client import Outcome, SidecarClient
from conveyor.tools.units import ParseError, Unit


def tools_config(database: Path, search_endpoint: str, warm_workers: int = 10) -> dict[str, Any]:
    """tools.yaml for the benchmark's sidecar."""
    # Workers of a root sidecar run as uids from `uid_base`, and a worker's exit kills every
    # process of its uid: a range of our own keeps other sidecars on this host from colliding.
    uid_base = 100_000 + (os.getpid() % 4000) * 200
    search = {"endpoint": search_endpoint}
    return {
        "tools": {
            "python": {},
            "sqlite": {"config": {"database": str(database)}},
            "search": {"config": search},
            # Validated: a field that breaks the schema is refused at once (the early abort).
            "calculator": {"validate": True},
            # Plan steps call the search backend from the planner's own worker.
            "planner": {"network": True, "config": {"tools": {"search": search}}},
        },
        # matplotlib with numpy maps more than the default 1 GiB of address space; concurrency 8
        # runs eight python workers on one core, so CPU limits leave room for that.
        "limits": {"wall_seconds": 120, "cpu_seconds": 60, "memory_mb": 3072, "nproc": 64},
        "pool": {"warm_workers": warm_workers, "max_workers": 64},
        "isolation": {"uid_base": uid_base},
    }


@dataclass
class CallRun:
    outcome: Outcome
    units: list[Unit]

    @property
    def busy(self) -> list[tuple[float, float]]:
        return [(float(a), float(b)) for a, b in self.outcome.timing.get("busy", [])]


async def run_call(
    client: SidecarClient,
    specs: dict[str, dict[str, Any]],
    name: str,
    arguments_text: str,
    spacing: float = 0.0,
) -> CallRun:
    """Run one complete call: open, every unit, finish; as a client-side agent loop does.

    ``spacing`` (seconds between units) lets a reject arrive before more units are sent, so a
    measurement sees the reject rather than a unit racing the worker's exit.
    """
    units = units_of(specs[name], arguments_text)
    invocation = await client.open(name)
    for unit in units:
        if invocation.done:
            break
        if isinstance(unit, ParseError):
            await invocation.cancel()
            break
        await invocation.feed(unit)
        if spacing:
            await asyncio.sleep(spacing)
    await invocation.finish()
    return CallRun(await invocation.outcome(), units)
