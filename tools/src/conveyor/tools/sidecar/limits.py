"""The building blocks of ``tools.yaml`` checking: the error, a tool's limits, strict filling.

Loading is strict: an unknown key, a wrong type or an impossible value fails at start with a
message that names the offending key (``limits.memory_mb: expected a positive number``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


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


def fill(cls: type, raw: Any, where: str, base: Any = None) -> Any:
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
