"""The MCP servers of the ConveyorService spec (issue 18): `spec.tools.mcpServers`.

Each server becomes an entry of `mcp_servers` in the sidecar's tools.yaml. A value from a Secret
never passes through the operator: the tools container gets an environment variable with
`valueFrom.secretKeyRef` (the kubelet reads the Secret) and tools.yaml names that variable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from conveyor.operator._schema import SpecError, prop
from conveyor.operator.spec_pod import SecretKeyRef

SERVER_NAME = r"^[a-z][a-z0-9_-]*$"  # tools.yaml's rule: its tools are served as "name.tool"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"  # an HTTP token (RFC 9110)
_MCP_TOOL_NAME = r"^[A-Za-z0-9_.-]+$"  # the MCP spec's tool name characters
_BY_NAME = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}
# A Secret-backed stdio variable is set in the tools container itself, where these names would
# change the sidecar's own process.
_PROCESS_ENV = ["PATH", "HOME", "LD_PRELOAD", "LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONHOME"]


@dataclass
class ValueSource:
    """Where a value comes from instead of `value`."""

    secret_key_ref: SecretKeyRef = prop(
        "A key of a Secret in this namespace; the kubelet reads it into the tools container's "
        "environment, the operator never reads it."
    )


@dataclass
class McpValue:
    """A named value, literal or from a Secret."""

    __cel__: ClassVar[list[tuple[str, str]]] = [
        (
            "has(self.value) != has(self.valueFrom)",
            "an MCP server's env or headers entry takes exactly one of value and valueFrom",
        ),
    ]
    name: str = prop("Its name.", minLength=1, maxLength=128)
    value: str | None = prop(
        "A literal value, written into the tools ConfigMap as it is (use valueFrom for secrets).",
        default=None,
    )
    value_from: ValueSource | None = prop("The value from a Secret.", default=None)


@dataclass
class McpEnvVar(McpValue):
    """An environment variable of a stdio MCP server's process."""

    __cel__: ClassVar[list[tuple[str, str]]] = [
        *McpValue.__cel__,
        (
            "!has(self.valueFrom) || !(self.name.startsWith('CONVEYOR_') || self.name in "
            + repr(_PROCESS_ENV).replace('"', "'")
            + ")",
            "an MCP env variable from a Secret is set in the tools container itself, so it may "
            "not be named " + ", ".join(_PROCESS_ENV) + " or CONVEYOR_*",
        ),
    ]
    name: str = prop(
        "Variable name. One from a Secret has this name in the tools container too, and the "
        "sidecar passes it to the server (tools.yaml pass_env).",
        pattern=_ENV_NAME,
        maxLength=128,
    )


@dataclass
class McpHeader(McpValue):
    """An HTTP header sent with every request to a streamable-http MCP server."""

    name: str = prop("Header name (Authorization, X-Team...).", pattern=_HEADER_NAME, maxLength=128)


@dataclass
class McpLimitsSpec:
    """Limits of this server's tool calls; unset ones are the tools container's."""

    wall_seconds: int | None = prop(
        "Seconds from a call's complete arguments to its result; default "
        "tools.sandbox.timeoutSeconds.",
        default=None,
        minimum=1,
        maximum=3600,
    )
    max_output_bytes: int | None = prop(
        "Largest result passed to the model; a larger one is truncated.", default=None, minimum=1
    )


@dataclass
class McpToolSpec:
    """Settings of one tool of an MCP server."""

    name: str = prop(
        "The tool's name as the server lists it.", pattern=_MCP_TOOL_NAME, maxLength=128
    )
    enabled: bool = prop("false hides the tool from the model.", default=True)
    start_on: str | None = prop(
        "Start the call as soon as this argument field is complete, before the rest of the "
        "arguments (opt-in; only for tools the server marks readOnlyHint or idempotentHint; "
        "docs/tools.md).",
        default=None,
        minLength=1,
    )


@dataclass
class McpServerSpec:
    """An MCP server whose tools the model may call, as `name.tool`."""

    __cel__: ClassVar[list[tuple[str, str]]] = [
        (
            "self.name != 'conveyor'",
            "the name conveyor is reserved: the Responses API labels the built-in tools' calls "
            "with it",
        ),
        (
            "self.transport != 'stdio' || has(self.command)",
            "a stdio MCP server needs command",
        ),
        (
            "self.transport != 'stdio' || (!has(self.url) && size(self.headers) == 0)",
            "url and headers are for streamable-http MCP servers; a stdio server takes command, "
            "args and env",
        ),
        (
            "self.transport != 'streamable-http' || has(self.url)",
            "a streamable-http MCP server needs url",
        ),
        (
            "self.transport != 'streamable-http' || "
            "(!has(self.command) && size(self.args) == 0 && size(self.env) == 0)",
            "command, args and env are for stdio MCP servers; a streamable-http server takes url "
            "and headers",
        ),
        (
            "self.transport != 'streamable-http' || !has(self.network) || self.network",
            "a streamable-http MCP server with network: false could never be reached; remove "
            "network or set it to true",
        ),
    ]
    name: str = prop(
        "Server name; its tools are served as name.tool.", pattern=SERVER_NAME, maxLength=63
    )
    transport: str = prop(
        "stdio: the sidecar starts command in the tool sandbox; streamable-http: it connects to "
        "url.",
        enum=["stdio", "streamable-http"],
    )
    command: str | None = prop(
        "stdio: the program. It must exist in the tools image, or on a volume mounted with "
        "tools.volumeMounts (docs/deploy.md).",
        default=None,
        minLength=1,
    )
    args: list[str] = prop("stdio: its arguments.", default=[], maxItems=64)
    env: list[McpEnvVar] = prop(
        "stdio: its environment; nothing else of the sidecar's environment reaches it.",
        default=[],
        maxItems=32,
        extra=_BY_NAME,
    )
    url: str | None = prop(
        "streamable-http: the server's endpoint.", default=None, pattern=r"^https?://.+$"
    )
    headers: list[McpHeader] = prop(
        "streamable-http: headers sent with every request.", default=[], maxItems=32, extra=_BY_NAME
    )
    network: bool | None = prop(
        "Whether the server's tools may use the network. Default: true for streamable-http "
        "(which needs it), tools.sandbox.network for stdio.",
        default=None,
    )
    limits: McpLimitsSpec = prop("Limits of its tool calls.", default=McpLimitsSpec())
    tools: list[McpToolSpec] = prop(
        "Settings per tool, by the tool's MCP name; a tool not listed is enabled.",
        default=[],
        maxItems=128,
        extra=_BY_NAME,
    )


def env_name(server: str, header: str) -> str:
    """The tools container's variable that holds a Secret-backed header of a server."""
    return re.sub(r"[^A-Z0-9]", "_", f"CONVEYOR_MCP_{server}_{header}".upper())


def secret_env(servers: list[McpServerSpec]) -> dict[str, SecretKeyRef]:
    """The tools container's Secret-backed variables, by name, in the servers' order.

    SpecError when one name would need two Secret keys: servers share the container's
    environment, and names derived from `a-b` and `a_b` (or two headers) can meet.
    """
    found: dict[str, SecretKeyRef] = {}
    for server in servers:
        named = [(e.name, e) for e in server.env] + [
            (env_name(server.name, h.name), h) for h in server.headers
        ]
        for name, entry in named:
            if entry.value_from is None:
                continue
            ref = entry.value_from.secret_key_ref
            if name in found and found[name] != ref:
                raise SpecError(
                    f"spec.tools.mcpServers: the tools container's variable {name} would come "
                    f"from two Secret keys ({found[name].name}/{found[name].key} and "
                    f"{ref.name}/{ref.key}); rename one server, env entry or header"
                )
            found[name] = ref
    return found
