"""`conveyor serve`: the engine, the sidecar (embedded or external) and the HTTP API together."""

from __future__ import annotations

import argparse
import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from conveyor.runtime import replay
from conveyor.runtime.chat_request import Mode, ServerPolicy
from conveyor.runtime.cores import parse_cpus, split_cores
from conveyor.runtime.decode_policy import RequestExtension
from conveyor.runtime.drain import Drain, DrainingServer
from conveyor.runtime.engine import Engine, EngineOptions
from conveyor.runtime.request_body import DEFAULT_MAX_BODY_BYTES
from conveyor.runtime.response_store import DEFAULT_MAX_ENTRIES, DEFAULT_TTL_SECONDS, ResponseStore
from conveyor.runtime.scheduler import Scheduler
from conveyor.runtime.server import ServerState, build_app
from conveyor.runtime.sidecar_process import EmbeddedSidecar
from conveyor.tools.client import SidecarClient
from conveyor.tools.parsing import formats

log = logging.getLogger(__name__)


def add_serve_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tool-call-parser",
        default="hermes",
        choices=formats(),
        help="the model's tool-call format (default: code for the default SmolLM2, else hermes)",
    )
    parser.add_argument(
        "--tools", help="comma-separated hosted tools (default: every tool the sidecar enables)"
    )
    parser.add_argument(
        "--sidecar", metavar="URL", help="external sidecar (http://HOST:PORT or unix:PATH)"
    )
    parser.add_argument("--tools-config", type=Path, help="tools.yaml for the embedded sidecar")
    parser.add_argument(
        "--mode", choices=[m.value for m in Mode], default="partial", help="default execution mode"
    )
    parser.add_argument(
        "--max-rounds", type=int, default=8, help="tool rounds per request (default and cap)"
    )
    parser.add_argument("--max-tokens", type=int, default=1024, help="default tokens per round")
    parser.add_argument(
        "--allow-replay", action="store_true", help="accept conveyor.replay (tests, benchmarks)"
    )
    parser.add_argument("--served-model-name", help="the model name clients use")
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help=f"largest request body accepted (default {DEFAULT_MAX_BODY_BYTES})",
    )
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="listen port (default 8000)")
    parser.add_argument(
        "--drain-seconds", type=float, default=60.0, help="grace for in-flight requests on SIGTERM"
    )
    parser.add_argument(
        "--tool-timeout", type=float, default=300.0, help="longest wait for one tool result"
    )
    parser.add_argument(
        "--responses-max-stored",
        type=int,
        default=DEFAULT_MAX_ENTRIES,
        help=f"responses kept for previous_response_id (default {DEFAULT_MAX_ENTRIES})",
    )
    parser.add_argument(
        "--responses-ttl",
        type=float,
        default=DEFAULT_TTL_SECONDS,
        help=f"seconds a stored response is kept (default {DEFAULT_TTL_SECONDS:g})",
    )
    parser.add_argument(
        "--sidecar-cpus", help="pin the embedded sidecar to these CPUs (e.g. 1 or 2-3)"
    )


@dataclass
class Runtime:
    """Everything `conveyor serve` runs, started in order and stopped in reverse."""

    engine: Engine
    sidecar: SidecarClient
    embedded: EmbeddedSidecar | None
    state: ServerState

    @classmethod
    async def start(cls, args: argparse.Namespace, engine_options: EngineOptions) -> Runtime:
        embedded = None
        if args.sidecar:
            url = args.sidecar
        else:
            cpus = split_cores(parse_cpus(args.sidecar_cpus))
            embedded = EmbeddedSidecar(config=args.tools_config, cpus=cpus)
            url = embedded.url
        try:
            engine = Engine.start(engine_options)  # the sidecar boots meanwhile
            if embedded is not None:
                await asyncio.to_thread(embedded.wait_ready)
            sidecar = SidecarClient(url, lost_note=embedded.lost_note if embedded else "")
            await sidecar.connect()
            specs = {spec["function"]["name"]: spec for spec in await sidecar.tools()}
        except BaseException:
            if embedded is not None:
                embedded.stop()
            raise
        state = build_state(args, engine, sidecar, specs, url, engine_options.model)
        return cls(engine, sidecar, embedded, state)

    async def stop(self) -> None:
        await self.sidecar.close()
        if self.embedded is not None:
            self.embedded.stop()
        self.engine.shutdown()


def build_state(
    args: argparse.Namespace,
    engine: Engine,
    sidecar: SidecarClient,
    specs: dict[str, dict[str, Any]],
    sidecar_url: str,
    model: str,
) -> ServerState:
    if args.tools:
        wanted = [name.strip() for name in args.tools.split(",") if name.strip()]
        missing = [name for name in wanted if name not in specs]
        if missing:
            raise SystemExit(
                f"conveyor: error: --tools names {missing}, which the sidecar does not enable "
                f"(enabled: {', '.join(sorted(specs))})"
            )
        specs = {name: specs[name] for name in wanted}
    hosted = {
        name: {k: v for k, v in spec.items() if k != "x-conveyor"} for name, spec in specs.items()
    }
    name = args.served_model_name or model
    extensions: dict[str, RequestExtension] = {}
    refused: dict[str, str] = {}
    if args.allow_replay:
        extensions[replay.OPTION] = replay.ReplayExtension(engine.tokenizer)
    else:
        refused[replay.OPTION] = "this server was not started with --allow-replay"
    policy = ServerPolicy(
        hosted_tools=hosted,
        mode=Mode(args.mode),
        max_rounds=args.max_rounds,
        max_tokens=args.max_tokens,
        model_names=(name, model) if name != model else (name,),
        extensions=extensions,
        refused_options=refused,
    )
    scheduler = Scheduler(
        engine, sidecar, specs, parser=args.tool_call_parser, tool_timeout=args.tool_timeout
    )
    try:
        store = ResponseStore(args.responses_max_stored, args.responses_ttl)
    except ValueError as error:
        raise SystemExit(f"conveyor: error: {error}") from None
    return ServerState(scheduler, policy, name, sidecar_url, args.max_body_bytes, store)


def run(args: argparse.Namespace, engine_options: EngineOptions) -> None:
    async def main() -> None:
        runtime = await Runtime.start(args, engine_options)
        drain = Drain(build_app(runtime.state))
        config = uvicorn.Config(
            drain,
            host=args.host,
            port=args.port,
            log_level="info",
            timeout_graceful_shutdown=int(args.drain_seconds),
        )
        log.info(
            "serving %s on http://%s:%d (tools: %s; mode %s)",
            runtime.state.model_name,
            args.host,
            args.port,
            ", ".join(sorted(runtime.state.policy.hosted_tools)) or "none",
            args.mode,
        )
        try:
            # SIGTERM: readiness fails at once, open requests finish, then uvicorn stops.
            await DrainingServer(config, drain, args.drain_seconds).serve()
        finally:
            await runtime.stop()

    asyncio.run(main())
