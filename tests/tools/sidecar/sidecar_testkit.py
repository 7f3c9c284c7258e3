"""Helpers shared by the sidecar tests: run one call the way the runtime does."""

from __future__ import annotations

import json
from typing import Any

from conveyor.tools.client import Invocation, Outcome, SidecarClient
from conveyor.tools.units import Statement, segmenter_from_spec


async def segmenters(client: SidecarClient) -> dict[str, Any]:
    """Each enabled tool's segmenter spec, as the runtime learns it from ``/v1/tools``."""
    return {s["function"]["name"]: s["x-conveyor"]["segmenter"] for s in await client.tools()}


async def call(
    client: SidecarClient, specs: dict[str, Any], tool: str, arguments: dict[str, Any]
) -> Outcome:
    """Cut the arguments' JSON text with the tool's own segmenter, feed every unit, finish."""
    seg = segmenter_from_spec(specs[tool])
    inv = await client.open(tool)
    text = json.dumps(arguments)
    for i in range(0, len(text), 7):  # in small deltas, as a model writes them
        for unit in seg.feed(text[i : i + 7]):
            await inv.feed(unit)
    for unit in seg.close():
        await inv.feed(unit)
    await inv.finish()
    return await inv.outcome()


async def python(client: SidecarClient, code: str, session: str | None = None) -> Outcome:
    """Run ``code`` in the python tool, one statement a unit (top-level lines only)."""
    inv = await client.open("python", session=session)
    await feed_code(inv, code)
    await inv.finish()
    return await inv.outcome()


async def feed_code(inv: Invocation, code: str) -> None:
    for n, line in enumerate(code.strip("\n").splitlines(), 1):
        await inv.feed(Statement(line + "\n", n))
