"""``mcp_servers`` in tools.yaml: strict checking (pure, no servers), and the argument rebuild."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.tools.sidecar.config import ConfigError, parse_config
from conveyor.tools.sidecar.mcp_call import assemble

STDIO = {"transport": "stdio", "command": "python3", "args": ["-m", "files_server"]}
HTTP = {"transport": "streamable-http", "url": "https://mcp.example.com/mcp"}


def _parse(servers: dict[str, Any]) -> Any:
    return parse_config({"tools": ["calculator"], "mcp_servers": servers}, ["calculator"])


def test_the_contract_example_parses_with_its_defaults() -> None:
    config = _parse(
        {
            "files": {**STDIO, "env": {"LOG_LEVEL": "info"}, "pass_env": ["FILES_TOKEN"],
                      "limits": {"wall_seconds": 20},
                      "tools": {"read_file": {"enabled": True, "start_on": "path"}}},
            "web": {**HTTP, "headers": {"X-Team": "search"},
                    "headers_from_env": {"Authorization": "MCP_WEB_AUTH"}},
        }
    )  # fmt: skip
    files, web = config.mcp_servers["files"], config.mcp_servers["web"]
    assert (files.network, web.network) == (False, True)
    assert files.limits.wall_seconds == 20 and files.tools["read_file"].start_on == "path"
    connection = files.connection({"FILES_TOKEN": "t0k"})
    assert connection["env"]["FILES_TOKEN"] == "t0k" and connection["env"]["LOG_LEVEL"] == "info"
    headers = web.connection({"MCP_WEB_AUTH": "Bearer x"})["headers"]
    assert headers == {"X-Team": "search", "Authorization": "Bearer x"}
    with pytest.raises(KeyError, match="MCP_WEB_AUTH"):
        web.connection({})


def test_only_mcp_servers_is_a_valid_config() -> None:
    config = parse_config({"tools": [], "mcp_servers": {"files": STDIO}}, ["calculator"])
    assert config.tools == {} and list(config.mcp_servers) == ["files"]


@pytest.mark.parametrize(
    ("servers", "message"),
    [
        ({"Files": STDIO}, r"mcp_servers\.Files: a server name must match"),
        ({"files.x": STDIO}, r"mcp_servers\.files\.x: a server name must match"),
        ({"conveyor": STDIO}, r"mcp_servers\.conveyor: the name conveyor is reserved"),
        ({"files": {**STDIO, "transport": "sse"}}, r"mcp_servers\.files\.transport: expected"),
        ({"files": {**STDIO, "url": "http://x"}}, r"mcp_servers\.files\.url: unknown key"),
        ({"files": {**STDIO, "args": "-m x"}}, r"mcp_servers\.files\.args: expected a list"),
        ({"files": {**STDIO, "env": {"A": 1}}}, r"mcp_servers\.files\.env: expected a mapping"),
        ({"files": {**STDIO, "pass_env": ["A-B"]}}, r"mcp_servers\.files\.pass_env: 'A-B'"),
        ({"files": {**STDIO, "network": "yes"}}, r"mcp_servers\.files\.network: expected true"),
        ({"files": {**STDIO, "limits": {"wall_secs": 1}}}, r"files\.limits\.wall_secs: unknown"),
        ({"files": {"transport": "stdio"}}, r"mcp_servers\.files\.command: expected a non-empty"),
        ({"web": {**HTTP, "url": "ftp://x"}}, r"mcp_servers\.web\.url: expected an http"),
        ({"web": {**HTTP, "command": "x"}}, r"mcp_servers\.web\.command: unknown key"),
        ({"web": {**HTTP, "tools": {"t": {"start": "q"}}}}, r"web\.tools\.t\.start: unknown key"),
        ({"web": {**HTTP, "tools": {"t": {"start_on": 3}}}}, r"web\.tools\.t\.start_on: expected"),
        ({"web": {**HTTP, "headers_from_env": {"A": "no way"}}}, r"headers_from_env\.A: 'no way'"),
        ({"web": {**HTTP, "list_timeout_seconds": 0}}, r"web\.list_timeout_seconds: expected a"),
    ],
)
def test_bad_mcp_config_names_the_key(servers: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _parse(servers)


def test_arguments_are_rebuilt_from_closed_fields() -> None:
    fields: list[tuple[tuple[str | int, ...], Any]] = [
        (("q",), "x"), (("opts", "k"), 1), (("tags", 0), "a"), (("tags", 1), "b"),
        (("rows", 0, "id"), 1), (("rows", 0, "v"), None), (("rows", 1, "id"), 2),
    ]  # fmt: skip
    assert assemble(fields) == {
        "q": "x",
        "opts": {"k": 1},
        "tags": ["a", "b"],
        "rows": [{"id": 1, "v": None}, {"id": 2}],
    }
