"""spec.tools.mcpServers rendered: tools.yaml's `mcp_servers` and the tools container's
Secret-backed environment (issue 18).

A literal value is written into tools.yaml; a Secret's value only ever reaches the pod through
an environment variable with `valueFrom.secretKeyRef`, which tools.yaml names (`pass_env`,
`headers_from_env`), so the operator needs no access to Secrets.
"""

from __future__ import annotations

from typing import Any

from conveyor.operator.render._meta import ConveyorService
from conveyor.operator.spec_mcp import McpServerSpec, env_name, secret_env


def _network(svc: ConveyorService, server: McpServerSpec) -> bool:
    if server.network is not None:
        return server.network
    return server.transport == "streamable-http" or svc.spec.tools.sandbox.network


def _server_entry(svc: ConveyorService, server: McpServerSpec) -> dict[str, Any]:
    entry: dict[str, Any] = {"transport": server.transport, "network": _network(svc, server)}
    if server.transport == "stdio":
        entry["command"] = server.command
        if server.args:
            entry["args"] = list(server.args)
        literal = {e.name: e.value for e in server.env if e.value_from is None}
        if literal:
            entry["env"] = literal
        passed = [e.name for e in server.env if e.value_from is not None]
        if passed:
            entry["pass_env"] = passed
    else:
        entry["url"] = server.url
        literal = {h.name: h.value for h in server.headers if h.value_from is None}
        if literal:
            entry["headers"] = literal
        from_env = {h.name: env_name(server.name, h.name) for h in server.headers if h.value_from}
        if from_env:
            entry["headers_from_env"] = from_env
    limits = {
        key: value
        for key, value in (
            ("wall_seconds", server.limits.wall_seconds),
            ("max_output_bytes", server.limits.max_output_bytes),
        )
        if value is not None
    }
    if limits:
        entry["limits"] = limits
    if server.tools:
        entry["tools"] = {t.name: _tool_entry(t.enabled, t.start_on) for t in server.tools}
    return entry


def _tool_entry(enabled: bool, start_on: str | None) -> dict[str, Any]:
    return {"enabled": enabled, **({"start_on": start_on} if start_on else {})}


def mcp_servers_document(svc: ConveyorService) -> dict[str, Any]:
    """tools.yaml's `mcp_servers`, by server name (shared contract 1 of issue 18)."""
    return {s.name: _server_entry(svc, s) for s in svc.spec.tools.mcp_servers}


def tools_env(svc: ConveyorService) -> list[dict[str, Any]]:
    """The tools container's variables that tools.yaml's pass_env and headers_from_env name."""
    return [
        {"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}
        for name, ref in secret_env(svc.spec.tools.mcp_servers).items()
    ]
