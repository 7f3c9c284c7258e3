"""MCP servers through the CRD (issue 18): spec.tools.mcpServers rendered into tools.yaml's
`mcp_servers` (shared contract 1) and the tools container's Secret-backed environment."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.operator._schema import SpecError
from conveyor.operator.render import Images, render

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = yaml.safe_load(
    (ROOT / "manifests/samples/conveyor.dev_v1alpha1_conveyorservice-mcp.yaml").read_text()
)
IMAGES = Images("reg.local/runtime:9", "reg.local/runtime:9-cpu", "reg.local/tools:9")
SECRET = {"secretKeyRef": {"name": "files-mcp", "key": "token"}}
STDIO = {
    "name": "files",
    "transport": "stdio",
    "command": "python3",
    "args": ["-m", "files_server"],
    "env": [
        {"name": "LOG_LEVEL", "value": "info"},
        {"name": "FILES_TOKEN", "valueFrom": SECRET},
    ],
    "limits": {"wallSeconds": 20},
    "tools": [
        {"name": "read_file", "startOn": "path"},
        {"name": "delete_file", "enabled": False},
    ],
}
HTTP = {
    "name": "web-search",
    "transport": "streamable-http",
    "url": "https://mcp.example.com/mcp",
    "headers": [
        {"name": "X-Team", "value": "search"},
        {"name": "Authorization", "valueFrom": {"secretKeyRef": {"name": "web", "key": "auth"}}},
    ],
    "limits": {"maxOutputBytes": 65536},
}
# Shared contract 1: the keys a server entry of tools.yaml may have, by transport.
CONTRACT_KEYS = {
    "stdio": {"transport", "command", "args", "env", "pass_env", "network", "limits", "tools"},
    "streamable-http": {"transport", "url", "headers", "headers_from_env", "network", "limits",
                        "tools"},
}  # fmt: skip


def children(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    obj = {
        "apiVersion": "conveyor.dev/v1alpha1",
        "kind": "ConveyorService",
        "metadata": {"name": "demo", "namespace": "serving", "uid": "u-1", "generation": 1},
        "spec": spec,
    }
    return {c["kind"]: c for c in render(obj, images=IMAGES)}


def mcp_spec(*servers: dict[str, Any], **tools: Any) -> dict[str, Any]:
    return {"model": {"name": "m"}, "tools": {"mcpServers": list(servers), **tools}}


def tools_yaml(spec: dict[str, Any]) -> dict[str, Any]:
    return yaml.safe_load(children(spec)["ConfigMap"]["data"]["tools.yaml"])  # type: ignore[no-any-return]


def pod_containers(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    pod = children(spec)["Deployment"]["spec"]["template"]["spec"]
    return {c["name"]: c for c in pod["containers"] + pod["initContainers"]}


def test_servers_are_written_in_the_sidecars_format() -> None:
    assert tools_yaml(mcp_spec(STDIO, HTTP))["mcp_servers"] == {
        "files": {
            "transport": "stdio",
            "command": "python3",
            "args": ["-m", "files_server"],
            "env": {"LOG_LEVEL": "info"},
            "pass_env": ["FILES_TOKEN"],
            "network": False,
            "limits": {"wall_seconds": 20},
            "tools": {
                "read_file": {"enabled": True, "start_on": "path"},
                "delete_file": {"enabled": False},
            },
        },
        "web-search": {
            "transport": "streamable-http",
            "url": "https://mcp.example.com/mcp",
            "headers": {"X-Team": "search"},
            "headers_from_env": {"Authorization": "CONVEYOR_MCP_WEB_SEARCH_AUTHORIZATION"},
            "network": True,
            "limits": {"max_output_bytes": 65536},
        },
    }


def test_the_samples_servers_fit_the_contract() -> None:
    servers = tools_yaml(SAMPLE["spec"])["mcp_servers"]
    assert sorted(servers) == ["notes", "search"]
    for entry in servers.values():
        assert set(entry) <= CONTRACT_KEYS[entry["transport"]], entry


def test_secret_values_reach_the_tools_container_through_the_kubelet() -> None:
    spec = mcp_spec(STDIO, HTTP)
    containers = pod_containers(spec)
    assert containers["tools"]["env"] == [
        {"name": "FILES_TOKEN", "valueFrom": SECRET},
        {
            "name": "CONVEYOR_MCP_WEB_SEARCH_AUTHORIZATION",
            "valueFrom": {"secretKeyRef": {"name": "web", "key": "auth"}},
        },
    ]
    # The runtime never sees them, and tools.yaml names Secrets nowhere.
    assert not any("valueFrom" in e for e in containers["runtime"]["env"])
    text = children(spec)["ConfigMap"]["data"]["tools.yaml"]
    assert "files-mcp" not in text and "secretKeyRef" not in text


def test_a_service_without_servers_renders_as_before() -> None:
    spec = mcp_spec()
    assert "mcp_servers" not in tools_yaml(spec)
    assert "env" not in pod_containers(spec)["tools"]


def test_network_defaults_follow_the_transport_and_the_sandbox() -> None:
    def network(server: dict[str, Any], sandbox_network: bool) -> bool:
        spec = mcp_spec(server, sandbox={"network": sandbox_network})
        return tools_yaml(spec)["mcp_servers"][server["name"]]["network"]  # type: ignore[no-any-return]

    assert network(STDIO, False) is False
    assert network(STDIO, True) is True
    assert network({**STDIO, "network": True}, False) is True
    assert network({**STDIO, "network": False}, True) is False
    assert network(HTTP, False) is True


def test_the_network_policy_leaves_egress_to_http_servers_open() -> None:
    # The policy governs ingress only; an http server's tools reach it when their network is on.
    policy = children(mcp_spec(HTTP))["NetworkPolicy"]["spec"]
    assert policy["policyTypes"] == ["Ingress"] and "egress" not in policy


def test_tools_volume_mounts_go_to_the_tools_container_only() -> None:
    containers = pod_containers(SAMPLE["spec"])
    mounts = {m["name"]: m for m in containers["tools"]["volumeMounts"]}
    assert mounts["mcp-servers"] == {
        "name": "mcp-servers",
        "mountPath": "/opt/mcp",
        "readOnly": True,
    }
    assert "mcp-servers" not in {m["name"] for m in containers["runtime"]["volumeMounts"]}


def test_one_secret_shared_by_two_servers_is_one_variable() -> None:
    other = {**copy.deepcopy(STDIO), "name": "files2"}
    env = pod_containers(mcp_spec(STDIO, other))["tools"]["env"]
    assert env == [{"name": "FILES_TOKEN", "valueFrom": SECRET}]


@pytest.mark.parametrize(
    ("servers", "variable"),
    [
        # Server names that differ by - and _ meet in the derived variable name.
        (
            [{**HTTP, "name": "web-search"}, {**HTTP, "name": "web_search", "headers": [
                {"name": "Authorization", "valueFrom": SECRET}]}],
            "CONVEYOR_MCP_WEB_SEARCH_AUTHORIZATION",
        ),
        # Two stdio servers that want FILES_TOKEN from different Secrets.
        (
            [STDIO, {**STDIO, "name": "files2", "env": [
                {"name": "FILES_TOKEN", "valueFrom": {"secretKeyRef": {"name": "other"}}}]}],
            "FILES_TOKEN",
        ),
    ],
)  # fmt: skip
def test_one_variable_from_two_secrets_is_refused(
    servers: list[dict[str, Any]], variable: str
) -> None:
    with pytest.raises(SpecError, match=f"variable {variable} would come from two Secret keys"):
        children(mcp_spec(*servers))


def test_mounted_volumes_are_shown_in_the_sandbox_and_the_sidecar_accepts_it() -> None:
    spec = {
        "model": {"name": "m"},
        "podTemplate": {"volumes": [{"name": "mcp", "configMap": {"name": "mcp"}}]},
        "tools": {"volumeMounts": [{"name": "mcp", "mountPath": "/opt/mcp", "readOnly": True}]},
    }
    doc = tools_yaml(spec)
    assert doc["isolation"] == {"expose_paths": ["/opt/mcp"]}
    assert "isolation" not in tools_yaml(mcp_spec(STDIO))
    # The sidecar's own parser (a dependency of the tests, never of the operator) reads it.
    config = pytest.importorskip("conveyor.tools.sidecar.config")
    parsed = config.parse_config(doc, known_tools=["python"])
    assert parsed.isolation.expose_paths == ("/opt/mcp",)
