"""``mcp_servers`` in ``tools.yaml``: the MCP servers whose tools the sidecar hosts.

Checked as strictly as the rest of the file: an unknown key, a wrong type or a bad name fails
at start with a message that names the key (``mcp_servers.files.args: expected a list of
strings``). Secrets are named here, never written: ``pass_env`` and ``headers_from_env`` name
variables of the sidecar's own environment, read when the server is listed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from conveyor.tools.sidecar.limits import ConfigError, Limits, fill

SERVER_NAME = re.compile(r"[a-z][a-z0-9_-]*")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RESERVED_NAME = "conveyor"  # the runtime's server_label for built-in tools' calls
# Workers start with an empty environment; a stdio server still needs to find its programs.
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
TRANSPORTS = ("stdio", "streamable-http")
_COMMON = {"transport", "network", "limits", "tools", "list_timeout_seconds"}
_KEYS = {
    "stdio": _COMMON | {"command", "args", "env", "pass_env"},
    "streamable-http": _COMMON | {"url", "headers", "headers_from_env"},
}


@dataclass(frozen=True, slots=True)
class McpToolOptions:
    """Per MCP tool: whether it is served, and the field whose closing may start it early."""

    enabled: bool = True
    start_on: str | None = None


@dataclass(frozen=True, slots=True)
class McpServerSettings:
    name: str
    transport: str
    network: bool
    limits: Limits
    command: str = ""
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    pass_env: tuple[str, ...] = ()
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    headers_from_env: dict[str, str] = field(default_factory=dict)
    tools: dict[str, McpToolOptions] = field(default_factory=dict)
    # The listing at start (a worker, the server's start, tools/list), all of it: a server
    # that takes longer is unavailable rather than holding the sidecar's readiness back.
    list_timeout_seconds: float = 30.0

    @property
    def reachable(self) -> bool:
        """A stdio server runs inside the sandbox; an http one needs the network."""
        return self.transport == "stdio" or self.network

    def connection(self, environ: Mapping[str, str]) -> dict[str, Any]:
        """What a worker needs to reach the server, secrets read from ``environ`` now.

        Raises ``KeyError`` naming a variable that ``pass_env`` or ``headers_from_env`` wants
        and the sidecar's environment lacks.
        """
        missing = [v for v in (*self.pass_env, *self.headers_from_env.values()) if v not in environ]
        if missing:
            raise KeyError(f"not set in the sidecar's environment: {', '.join(missing)}")
        if self.transport == "stdio":
            env = {"PATH": DEFAULT_PATH, **self.env, **{v: environ[v] for v in self.pass_env}}
            return {"transport": self.transport, "command": self.command, "args": list(self.args),
                    "env": env}  # fmt: skip
        headers = {**self.headers, **{h: environ[v] for h, v in self.headers_from_env.items()}}
        return {"transport": self.transport, "url": self.url, "headers": headers}


def parse_mcp_servers(raw: Any, limits: Limits) -> dict[str, McpServerSettings]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"mcp_servers: expected a mapping, got {type(raw).__name__}")
    return {name: _server(name, entry, limits) for name, entry in raw.items()}


def _server(name: Any, raw: Any, limits: Limits) -> McpServerSettings:
    where = f"mcp_servers.{name}"
    if not isinstance(name, str) or not SERVER_NAME.fullmatch(name):
        raise ConfigError(f"{where}: a server name must match [a-z][a-z0-9_-]*")
    if name == RESERVED_NAME:
        raise ConfigError(f"{where}: the name {name} is reserved (the Responses API's label of "
                          "the built-in tools' calls)")  # fmt: skip
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    transport = raw.get("transport")
    if transport not in TRANSPORTS:
        raise ConfigError(f"{where}.transport: expected one of {', '.join(TRANSPORTS)}")
    for key in raw:
        if key not in _KEYS[transport]:
            expected = ", ".join(sorted(_KEYS[transport]))
            raise ConfigError(f"{where}.{key}: unknown key for {transport} (expected {expected})")
    network = raw.get("network", transport == "streamable-http")
    if not isinstance(network, bool):
        raise ConfigError(f"{where}.network: expected true or false, got {network!r}")
    common: dict[str, Any] = {
        "name": name,
        "transport": transport,
        "network": network,
        "limits": fill(Limits, raw.get("limits"), f"{where}.limits", base=limits),
        "tools": _tools(raw.get("tools"), f"{where}.tools"),
        "list_timeout_seconds": _positive(
            raw.get("list_timeout_seconds", 30.0), f"{where}.list_timeout_seconds"
        ),
    }
    if transport == "stdio":
        return McpServerSettings(
            command=_string(raw.get("command"), f"{where}.command"),
            args=tuple(_strings(raw.get("args", []), f"{where}.args")),
            env=_string_map(raw.get("env"), f"{where}.env", ENV_NAME),
            pass_env=tuple(_env_names(raw.get("pass_env", []), f"{where}.pass_env")),
            **common,
        )
    url = _string(raw.get("url"), f"{where}.url")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}.url: expected an http:// or https:// URL, got {url!r}")
    headers_from_env = _string_map(raw.get("headers_from_env"), f"{where}.headers_from_env")
    for header, variable in headers_from_env.items():
        _env_names([variable], f"{where}.headers_from_env.{header}")
    return McpServerSettings(
        url=url,
        headers=_string_map(raw.get("headers"), f"{where}.headers"),
        headers_from_env=headers_from_env,
        **common,
    )


def _tools(raw: Any, where: str) -> dict[str, McpToolOptions]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    out: dict[str, McpToolOptions] = {}
    for tool, entry in raw.items():
        path = f"{where}.{tool}"
        entry = {} if entry is None else entry
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(entry).__name__}")
        for key in entry:
            if key not in {"enabled", "start_on"}:
                raise ConfigError(f"{path}.{key}: unknown key (expected enabled, start_on)")
        enabled = entry.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"{path}.enabled: expected true or false, got {enabled!r}")
        start_on = entry.get("start_on")
        if start_on is not None:
            start_on = _string(start_on, f"{path}.start_on")
        out[str(tool)] = McpToolOptions(enabled, start_on)
    return out


def _positive(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{where}: expected a positive number, got {value!r}")
    return float(value)


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
    return value


def _env_names(value: Any, where: str) -> list[str]:
    names = _strings(value, where)
    for name in names:
        if not ENV_NAME.fullmatch(name):
            raise ConfigError(f"{where}: {name!r} is not an environment variable name")
    return names


def _string_map(value: Any, where: str, keys: re.Pattern[str] | None = None) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigError(f"{where}: expected a mapping of strings to strings, got {value!r}")
    for key in value:
        if keys is not None and not keys.fullmatch(key):
            raise ConfigError(f"{where}.{key}: not an environment variable name")
    return dict(value)
