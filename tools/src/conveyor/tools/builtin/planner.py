"""The planner tool: runs ``$n = tool(args)`` plan steps as a DAG, each as soon as it can.

A step starts its tool (the warm-up) the moment its line is complete, waits only for the
steps it references, then feeds its arguments through the tool's own segmenter. Independent
steps run in parallel. Config: ``tools`` maps a tool name to the config of its instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from typing import Any, ClassVar

from conveyor.tools._tool import Reject, Result, Tool, ToolSource
from conveyor.tools.units import (
    ParseError,
    Ref,
    Segmenter,
    Step,
    Unit,
    Whole,
    parse_step,
    plan_field,
)

_TEXT_REF = re.compile(r"\$(\d+)")


class PlannerTool(Tool):
    name: ClassVar[str] = "planner"
    description: ClassVar[str] = (
        'Run a plan of tool calls, one step a line: `$1 = search("x")`, '
        '`$2 = calculator("$1 * 2")`. `$n` is the result of step n; '
        "independent steps run in parallel."
    )
    parameters: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"plan": {"type": "string", "description": "The plan, one step a line."}},
        "required": ["plan"],
    }

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config=config or {})
        self._registry: ToolSource | None = None
        self._steps: dict[int, Step] = {}
        self._tasks: dict[int, asyncio.Task[Result]] = {}

    def segmenter(self) -> Segmenter:
        return plan_field("plan")

    def use_registry(self, registry: ToolSource) -> None:
        self._registry = registry

    async def feed(self, unit: Unit) -> Reject | None:
        if isinstance(unit, ParseError):
            return Reject(unit.message)
        if isinstance(unit, Whole):
            for line in str(unit.arguments.get("plan", "")).splitlines():
                if line.strip() and not line.strip().startswith(("#", "Thought:")):
                    try:
                        step = parse_step(line.strip())
                    except ValueError as exc:
                        return Reject(f"bad plan line {line.strip()!r}: {exc}")
                    if (rejected := self._add(step)) is not None:
                        return rejected
            return None
        if isinstance(unit, Step):
            return self._add(unit)
        return None

    def _add(self, step: Step) -> Reject | None:
        # Everything that makes a plan impossible is known from its line: abort decoding now.
        if self._registry is None:
            return Reject("the planner has no tools: create it through a ToolRegistry")
        if step.id in self._steps:
            return Reject(f"step ${step.id} is defined twice")
        if step.tool == self.name or step.tool not in self._registry:
            return Reject(f"step ${step.id}: unknown tool {step.tool!r}")
        missing = [d for d in step.deps if d not in self._steps]
        if missing:
            return Reject(f"step ${step.id} uses ${missing[0]}, which is not defined before it")
        tool = self._registry.create(step.tool, self.config.get("tools", {}).get(step.tool))
        self._steps[step.id] = step
        self._tasks[step.id] = asyncio.create_task(self._run(step, tool))
        return None

    async def _run(self, step: Step, tool: Tool) -> Result:
        try:
            return await self._run_step(step, tool)
        except Exception as exc:  # one failing step must not take the plan down
            with contextlib.suppress(Exception):
                await tool.cancel()
            return Result(f"step ${step.id} failed: {type(exc).__name__}: {exc}", is_error=True)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await tool.cancel()
            raise

    async def _run_step(self, step: Step, tool: Tool) -> Result:
        started = asyncio.create_task(tool.start())
        try:
            deps = {d: await self._tasks[d] for d in step.deps}
        except BaseException:
            started.cancel()
            raise
        await started
        failed = [d for d, r in deps.items() if r.is_error]
        if failed:
            await tool.cancel()
            return Result(f"not run: step ${failed[0]} failed", is_error=True)
        arguments = _arguments(tool, step.args, {d: r.content for d, r in deps.items()})
        segmenter = tool.segmenter()
        units = segmenter.feed(json.dumps(arguments)) + segmenter.close()
        for u in units:
            rejected = await tool.feed(u)
            if rejected is not None:
                await tool.cancel()
                return Result(f"rejected: {rejected.reason}", is_error=True)
        return await tool.finish()

    async def finish(self) -> Result:
        if not self._tasks:
            return Result("empty plan", is_error=True)
        results = dict(zip(self._tasks, await asyncio.gather(*self._tasks.values()), strict=True))
        lines = []
        for sid in sorted(results):
            r = results[sid]
            lines.append(
                f"${sid} = {self._steps[sid].tool}: {'ERROR ' if r.is_error else ''}{r.content}"
            )
        data = {
            "steps": {
                str(sid): {
                    "tool": self._steps[sid].tool,
                    "content": r.content,
                    "is_error": r.is_error,
                }
                for sid, r in results.items()
            }
        }
        return Result(
            "\n".join(lines), is_error=any(r.is_error for r in results.values()), data=data
        )

    async def cancel(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _arguments(tool: Tool, args: dict[str | int, Any], outputs: dict[int, str]) -> dict[str, Any]:
    """Name positional arguments after the tool's parameters and substitute step outputs."""
    names = list(tool.parameters.get("properties", {}))
    out: dict[str, Any] = {}
    for key, value in args.items():
        if isinstance(key, int):
            key = names[key] if key < len(names) else f"arg{key}"
        out[key] = _resolve(value, outputs)
    return out


def _resolve(value: Any, outputs: dict[int, str]) -> Any:
    if isinstance(value, Ref):
        return outputs[value.id]
    if isinstance(value, str):
        return _TEXT_REF.sub(lambda m: outputs.get(int(m.group(1)), m.group(0)), value)
    if isinstance(value, list):
        return [_resolve(v, outputs) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, outputs) for k, v in value.items()}
    return value
