"""The sidecar's configuration (``tools.yaml``): which tools run, with what settings and limits.

Loading is strict: an unknown key, a wrong type or an impossible value fails at start with a
message that names the offending key (``limits.memory_mb: expected a positive number``), so a
typo never silently becomes a default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Tools that reach other services: they get a network unless tools.yaml says otherwise.
NEEDS_NETWORK = frozenset({"search"})


class ConfigError(ValueError):
    """A ``tools.yaml`` that cannot be used; the message names the key."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-worker limits: CPU, memory, files by the kernel (setrlimit); time by the sidecar."""

    cpu_seconds: float = 10.0  # RLIMIT_CPU, per invocation (per call within a session)
    session_cpu_seconds: float = 120.0  # hard RLIMIT_CPU for a whole session
    memory_mb: int = 1024  # RLIMIT_AS: the worker's whole address space
    file_size_mb: int = 16  # RLIMIT_FSIZE
    nproc: int = 32  # processes and threads of one call, all together
    open_files: int = 64  # RLIMIT_NOFILE
    disk_mb: int = 64  # every writable place of one call together (/tmp, /dev/shm...)
    wall_seconds: float = 30.0  # from `finish` to the answer
    max_invocation_seconds: float = 600.0  # from `open` to the answer, whatever happens
    max_output_bytes: int = 1 << 20  # a larger result is truncated; a larger message kills


@dataclass(frozen=True, slots=True)
class ToolSettings:
    """One enabled tool: its own settings (passed to the tool) and the sidecar's for it."""

    name: str
    config: dict[str, Any] = field(default_factory=dict)
    network: bool = False
    validate: bool = False  # wrap in validated(): reject a field that breaks the schema at once
    limits: Limits = field(default_factory=Limits)


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


def _fill(cls: type, raw: Any, where: str, base: Any = None) -> Any:
    """Build dataclass ``cls`` from a mapping, checking keys and types; ``base`` has defaults."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in fields:
            raise ConfigError(f"{path}: unknown key (expected one of {', '.join(sorted(fields))})")
        default = getattr(base, key) if base is not None else fields[key].default
        values[key] = _check_value(path, value, default)
    return dataclasses.replace(base, **values) if base is not None else cls(**values)


def _check_value(path: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if isinstance(default, int | float):
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"{path}: expected a positive number, got {value!r}")
        if isinstance(default, int) and not isinstance(value, int):
            raise ConfigError(f"{path}: expected a whole number, got {value!r}")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{path}: expected a list of strings, got {value!r}")
        return tuple(value)
    if not isinstance(value, str):
        raise ConfigError(f"{path}: expected a string, got {value!r}")
    return value


def parse_config(raw: Any, known_tools: list[str], source: str | None = None) -> SidecarConfig:
    """Validate a parsed ``tools.yaml`` document against the tools that exist."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"(top level): expected a mapping, got {type(raw).__name__}")
    allowed = {"tools", "limits", "pool", "isolation", "server"}
    for key in raw:
        if key not in allowed:
            raise ConfigError(f"{key}: unknown key (expected one of {', '.join(sorted(allowed))})")
    limits = _fill(Limits, raw.get("limits"), "limits")
    tools_raw = raw.get("tools", list(known_tools))
    if isinstance(tools_raw, list):
        tools_raw = {name: {} for name in tools_raw}
    if not isinstance(tools_raw, dict) or not tools_raw:
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
        tool_limits = _fill(Limits, entry.get("limits"), f"{where}.limits", base=limits)
        tools[name] = ToolSettings(name, dict(config), limits=tool_limits, **flags)
    if not tools:
        raise ConfigError("tools: every tool is disabled")
    isolation_raw = raw.get("isolation")
    if isolation_raw == "none" or isolation_raw is False:  # YAML reads a bare `none` as a string
        isolation = IsolationSettings(sandbox=False)
    else:
        isolation = _fill(IsolationSettings, isolation_raw, "isolation")
    pool = _fill(PoolSettings, raw.get("pool"), "pool")
    if pool.warm_workers > pool.max_workers:
        raise ConfigError("pool.warm_workers: must not exceed pool.max_workers")
    return SidecarConfig(
        tools=tools,
        limits=limits,
        pool=pool,
        isolation=isolation,
        server=_fill(ServerSettings, raw.get("server"), "server"),
        source=source,
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
