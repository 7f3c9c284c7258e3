"""``conveyor-tools``: the command line of the tool package (the sidecar server)."""

from __future__ import annotations

import argparse
import logging
import sys

from conveyor.tools.sidecar.config import ConfigError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="conveyor-tools",
        description="Conveyor's tool package: run the isolated tool sidecar.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help="run the tool sidecar (websocket protocol conveyor.tools/v1)",
        description=(
            "Serve the enabled tools over the websocket /v1/invocations, with /v1/tools, "
            "/healthz, /readyz and /metrics. Every invocation runs in an isolated worker process "
            "from a warm pool. SIGTERM drains: no new invocations, in-flight ones get the grace "
            "period (server.grace_seconds), the rest are cancelled with an error."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8001, help="TCP port to listen on")
    serve.add_argument("--uds", metavar="PATH", help="listen on this Unix socket instead of TCP")
    serve.add_argument(
        "--config",
        metavar="TOOLS_YAML",
        help="tools.yaml: enabled tools, their settings, limits (default: every built-in tool)",
    )
    serve.add_argument(
        "--check-config", action="store_true", help="validate the config, print it, and exit"
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="log level",
    )
    serve.add_argument(
        "--worker-stderr",
        action="store_true",
        help="let workers write to the sidecar's stderr (debugging; untrusted code can too)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    from conveyor.tools.sidecar.service import Sidecar

    try:
        sidecar = Sidecar.from_file(args.config, worker_stderr=args.worker_stderr)
    except ConfigError as e:
        print(f"conveyor-tools: bad config: {e}", file=sys.stderr)
        return 2
    if args.check_config:
        for name, tool in sidecar.config.tools.items():
            print(f"{name}: network={tool.network} limits={tool.limits}")
        for name, server in sidecar.config.mcp_servers.items():  # its tools are listed at start
            where = server.command if server.transport == "stdio" else server.url
            print(f"{name}.*: MCP {server.transport} {where} network={server.network} "
                  f"limits={server.limits}")  # fmt: skip
        return 0
    from conveyor.tools.sidecar.server import serve

    serve(sidecar, host=args.host, port=args.port, uds=args.uds, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
