"""The sidecar's configuration (``tools.yaml``): which tools run, with what settings and limits.

Loading is strict: an unknown key, a wrong type or an impossible value fails at start with a
message that names the offending key (``limits.memory_mb: expected a positive number``), so a
typo never silently becomes a default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from conveyor.tools.sidecar.limits import ConfigError as ConfigError
from conveyor.tools.sidecar.limits import Limits as Limits
from conveyor.tools.sidecar.limits import fill
from conveyor.tools.sidecar.mcp_config import McpServerSettings, parse_mcp_servers

# Tools that reach other services: they get a network unless tools.yaml says otherwise.
NEEDS_NETWORK = frozenset({"search"})


@dataclass(frozen=True, slots=True)
class ToolSettings:
    """One enabled tool: its own settings (passed to the tool) and the sidecar's for it."""

    name: str
    config: dict[str, Any] = field(default_factory=dict)
    network: bool = False
    validate: bool = False  # wrap in validated(): reject a field that breaks the schema at once
    limits: Limits = field(default_factory=Limits)
    runs: str = ""  # the worker's tool that runs it, when not ``name`` (MCP tools: "mcp")


@dataclass(frozen=True, slots=True)
class PoolSettings:
    warm_workers: int = 4  # ready workers kept per isolation profile
    max_workers: int = 64  # workers alive at once, warm and busy together
    session_idle_seconds: float = 300.0  # a session's worker is recycled after this idle time
    worker_start_timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class IsolationSettings:
    """How workers are isolated; ``isolation: none`` in tools.yaml turns it off (local dev only)."""

    sandbox: bool = True  # namespaces, private filesystem, totals per call (docs/security.md)
    drop_privileges: bool = True  # as root: every worker runs as its own uid
    uid_base: int = 61000
    hide_paths: tuple[str, ...] = ("/var/run/secrets", "/run/secrets")
    expose_paths: tuple[str, ...] = ()  # shown read-only in the sandbox, besides the defaults
    workdir_root: str | None = None  # default: the system temp dir


@dataclass(frozen=True, slots=True)
class ServerSettings:
    max_frame_bytes: int = 1 << 20
    max_pending_bytes: int = 4 << 20  # per invocation: units queued for a slow tool
    max_invocations_per_connection: int = 1024
    grace_seconds: float = 20.0  # SIGTERM: how long in-flight invocations may still finish


@dataclass(frozen=True, slots=True)
class SidecarConfig:
    tools: dict[str, ToolSettings]
    limits: Limits = field(default_factory=Limits)
    pool: PoolSettings = field(default_factory=PoolSettings)
    isolation: IsolationSettings = field(default_factory=IsolationSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    source: str | None = None  # the file it came from, hidden from workers
    mcp_servers: dict[str, McpServerSettings] = field(default_factory=dict)

    def profiles(self) -> list[tuple[bool, Limits]]:
        """(network, limits) of everything workers run: the tools and the MCP servers."""
        return [(t.network, t.limits) for t in self.tools.values()] + [
            (s.network, s.limits) for s in self.mcp_servers.values() if s.reachable
        ]


def parse_config(raw: Any, known_tools: list[str], source: str | None = None) -> SidecarConfig:
    """Validate a parsed ``tools.yaml`` document against the tools that exist."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"(top level): expected a mapping, got {type(raw).__name__}")
    allowed = {"tools", "limits", "pool", "isolation", "server", "mcp_servers"}
    for key in raw:
        if key not in allowed:
            raise ConfigError(f"{key}: unknown key (expected one of {', '.join(sorted(allowed))})")
    limits = fill(Limits, raw.get("limits"), "limits")
    mcp_servers = parse_mcp_servers(raw.get("mcp_servers"), limits)
    tools_raw = raw.get("tools", list(known_tools))
    if isinstance(tools_raw, list):
        tools_raw = {name: {} for name in tools_raw}
    if not isinstance(tools_raw, dict) or not (tools_raw or mcp_servers):
        raise ConfigError("tools: expected a non-empty list of tool names or a mapping")
    tools: dict[str, ToolSettings] = {}
    for name, entry in tools_raw.items():
        where = f"tools.{name}"
        if name not in known_tools:
            raise ConfigError(f"{where}: unknown tool (known: {', '.join(sorted(known_tools))})")
        entry = {} if entry is None else entry
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(entry).__name__}")
        for key in entry:
            if key not in {"enabled", "config", "network", "limits", "validate"}:
                expected = "config, enabled, limits, network, validate"
                raise ConfigError(f"{where}.{key}: unknown key (expected {expected})")
        enabled = entry.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"{where}.enabled: expected true or false, got {enabled!r}")
        if not enabled:
            continue
        config = entry.get("config") or {}
        if not isinstance(config, dict):
            raise ConfigError(f"{where}.config: expected a mapping, got {type(config).__name__}")
        flags = {}
        for key in ("network", "validate"):
            flags[key] = entry.get(key, key == "network" and name in NEEDS_NETWORK)
            if not isinstance(flags[key], bool):
                raise ConfigError(f"{where}.{key}: expected true or false, got {flags[key]!r}")
        tool_limits = fill(Limits, entry.get("limits"), f"{where}.limits", base=limits)
        tools[name] = ToolSettings(name, dict(config), limits=tool_limits, **flags)
    if not tools and not mcp_servers:
        raise ConfigError("tools: every tool is disabled")
    isolation_raw = raw.get("isolation")
    if isolation_raw == "none" or isolation_raw is False:  # YAML reads a bare `none` as a string
        isolation = IsolationSettings(sandbox=False)
    else:
        isolation = fill(IsolationSettings, isolation_raw, "isolation")
    pool = fill(PoolSettings, raw.get("pool"), "pool")
    if pool.warm_workers > pool.max_workers:
        raise ConfigError("pool.warm_workers: must not exceed pool.max_workers")
    return SidecarConfig(
        tools=tools,
        limits=limits,
        pool=pool,
        isolation=isolation,
        server=fill(ServerSettings, raw.get("server"), "server"),
        source=source,
        mcp_servers=mcp_servers,
    )


def load_config(path: str | Path | None, known_tools: list[str]) -> SidecarConfig:
    """Read ``tools.yaml`` (or the defaults: every known tool, default limits)."""
    if path is None:
        return parse_config({}, known_tools)
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from e
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from e
    return parse_config(raw, known_tools, source=str(path.resolve()))
