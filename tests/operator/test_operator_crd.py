"""The CRD: generated from the spec types, structural, its samples admitted, bad specs refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from crdcheck import admit, cel_rules, evaluate_rule

from conveyor.operator.crd import crd, crd_yaml, openapi_schema
from conveyor.operator.spec import parse_spec

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "manifests" / "crd.yaml"
SAMPLES = sorted((ROOT / "manifests" / "samples").glob("*.yaml"))


def test_committed_crd_is_generated_from_the_spec_types() -> None:
    assert CRD_FILE.read_text() == crd_yaml(), (
        "manifests/crd.yaml is stale: run `conveyor-operator crd > manifests/crd.yaml`"
    )


def test_crd_command_prints_the_crd() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "conveyor.operator.cli", "crd"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert yaml.safe_load(out) == crd()


def test_crd_is_a_valid_kubernetes_object() -> None:
    kubernetes_validate.validate(crd(), "1.35.0", strict=True)


def test_crd_names_subresources_and_columns() -> None:
    spec = crd()["spec"]
    assert spec["names"]["shortNames"] == ["cvs"]
    assert spec["group"] == "conveyor.dev"
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1"
    assert version["subresources"]["status"] == {}
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert list(columns) == ["Ready", "Reason", "Replicas", "Model", "Age"]
    assert columns["Reason"] == '.status.conditions[?(@.type=="Ready")].reason'
    assert columns["Replicas"] == ".status.readyOfDesired"  # "ready/desired"


def test_every_field_has_a_description() -> None:
    undescribed = [
        path
        for path, node in _nodes(openapi_schema())
        for key, sub in node.get("properties", {}).items()
        if not sub.get("description", "").strip()
        for path in [f"{path}.{key}"]
    ]
    assert undescribed == []


def test_no_image_default_is_baked_into_the_schema() -> None:
    # A schema default is copied into every object at admission; image defaults come from the
    # operator's configuration instead, so an upgrade needs no edit of any object.
    stored, errors = admit(_obj({"model": MODEL}))
    assert errors == []
    assert "image" not in stored["spec"]["engine"] and "image" not in stored["spec"]["tools"]
    images = [node for path, node in _nodes(openapi_schema()) if path.endswith(".image")]
    assert len(images) == 2 and all("default" not in node for node in images)


def _nodes(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, schema)]
    for key, sub in schema.get("properties", {}).items():
        found += _nodes(sub, f"{path}.{key}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            found += _nodes(schema[key], f"{path}[{key}]")
    return found


def test_schema_is_structural() -> None:
    # Every node has a type (or is int-or-string); no additionalProperties beside properties.
    for path, node in _nodes(openapi_schema()):
        assert "type" in node or node.get("x-kubernetes-int-or-string"), path
        assert not ("properties" in node and "additionalProperties" in node), path


def test_every_cel_rule_compiles_and_has_a_message() -> None:
    rules = cel_rules(openapi_schema())
    assert len(rules) >= 6
    for path, node in _nodes(openapi_schema()):
        for rule in node.get("x-kubernetes-validations", []):
            assert rule["message"].strip(), path
    # A rule that cannot compile raises here rather than at `kubectl apply`.
    assert evaluate_rule(rules[0], {"metadata": {"name": "ok"}})


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_samples_are_admitted(path: Path) -> None:
    obj = yaml.safe_load(path.read_text())
    assert path.name.startswith("conveyor.dev_v1alpha1_conveyorservice-")
    stored, errors = admit(obj)
    assert errors == []
    parse_spec(stored["spec"])  # and the operator's types hold what the API server stored


def test_three_kinds_of_samples() -> None:
    specs = {p.name: yaml.safe_load(p.read_text())["spec"] for p in SAMPLES}
    assert any(s.get("resources", {}).get("gpus", 0) == 0 for s in specs.values())
    gpu = [s for s in specs.values() if s["model"]["name"] == "Qwen/Qwen2.5-7B-Instruct"]
    assert any({"python", "sqlite", "search"} <= set(s["tools"]["enabled"]) for s in gpu)
    assert any("autoscaling" in s for s in specs.values())


def _obj(spec: dict[str, Any], name: str = "demo") -> dict[str, Any]:
    return {
        "apiVersion": "conveyor.dev/v1alpha1",
        "kind": "ConveyorService",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }


MODEL = {"name": "Qwen/Qwen2.5-7B-Instruct"}
STDIO = {"name": "files", "transport": "stdio", "command": "python3"}
HTTP = {"name": "web", "transport": "streamable-http", "url": "https://mcp.example.com/mcp"}
SECRET = {"secretKeyRef": {"name": "mcp", "key": "token"}}

INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    # (case, spec, where the error is, what it says)
    ("no model", {}, "spec", "'model' is a required property"),
    ("empty model name", {"model": {"name": ""}}, "spec.model.name", "should be non-empty"),
    (
        "negative replicas",
        {"model": MODEL, "replicas": -1},
        "spec.replicas",
        "less than the minimum",
    ),
    (
        "unknown parser",
        {"model": {**MODEL, "toolCallParser": "xml"}},
        "spec.model.toolCallParser",
        "is not one of",
    ),
    (
        "unknown mode",
        {"model": MODEL, "tools": {"mode": "eager"}},
        "spec.tools.mode",
        "is not one of",
    ),
    (
        "gpu memory above 1",
        {"model": MODEL, "engine": {"gpuMemoryUtilization": 1.5}},
        "spec.engine.gpuMemoryUtilization",
        "greater than the maximum",
    ),
    (
        "zero gpu memory",
        {"model": MODEL, "engine": {"gpuMemoryUtilization": 0}},
        "spec.engine.gpuMemoryUtilization",
        "less than or equal to the minimum",
    ),
    (
        "misspelt field",
        {"model": MODEL, "replica": 2},
        "spec",
        "Additional properties are not allowed ('replica' was unexpected)",
    ),
    (
        "bad memory quantity",
        {"model": MODEL, "resources": {"memory": "lots"}},
        "spec.resources.memory",
        "is not valid under any of the given schemas",
    ),
    (
        "bad scrape interval",
        {"model": MODEL, "metrics": {"interval": "30"}},
        "spec.metrics.interval",
        "does not match",
    ),
    (
        "autoscaling without max",
        {"model": MODEL, "autoscaling": {"minReplicas": 1}},
        "spec.autoscaling",
        "'maxReplicas' is a required property",
    ),
    (
        "tool listed twice",
        {"model": MODEL, "tools": {"enabled": ["python", "python"]}},
        "spec.tools.enabled",
        "has non-unique elements",
    ),
    (
        "no tools",
        {"model": MODEL, "tools": {"enabled": []}},
        "spec.tools.enabled",
        "should be non-empty",
    ),
    (
        "unknown autoscaling metric",
        {"model": MODEL, "autoscaling": {"maxReplicas": 3, "metric": "cpu"}},
        "spec.autoscaling.metric",
        "does not match",
    ),
    # CEL rules: the exact message a person sees.
    (
        "min above max",
        {"model": MODEL, "autoscaling": {"minReplicas": 5, "maxReplicas": 2}},
        "spec.autoscaling",
        "autoscaling.minReplicas must not be greater than autoscaling.maxReplicas",
    ),
    (
        "gpus not divisible",
        {"model": MODEL, "resources": {"gpus": 3}, "engine": {"tensorParallelSize": 2}},
        "spec",
        "resources.gpus must be a multiple of engine.tensorParallelSize",
    ),
    (
        "tensor parallel without gpus",
        {"model": MODEL, "engine": {"tensorParallelSize": 2}},
        "spec",
        "engine.tensorParallelSize greater than 1 needs at least that many resources.gpus",
    ),
    (
        "two model sources",
        {"model": {**MODEL, "source": {"huggingFace": {}, "pvc": {"claimName": "w"}}}},
        "spec.model.source",
        "model.source takes either huggingFace or pvc, not both",
    ),
    (
        "config for a disabled tool",
        {"model": MODEL, "tools": {"enabled": ["python"], "config": {"sqlite": {}}}},
        "spec.tools",
        "tools.config has settings for a tool that is not in tools.enabled",
    ),
    (
        "replicas and autoscaling together",
        {"model": MODEL, "replicas": 2, "autoscaling": {"maxReplicas": 4}},
        "spec",
        "spec.replicas and spec.autoscaling are mutually exclusive: the autoscaler owns the "
        "replica count, so remove spec.replicas (or spec.autoscaling)",
    ),
    (
        "rollout that cannot replace a pod",
        {"model": MODEL, "rollout": {"maxSurge": 0, "maxUnavailable": "0%"}},
        "spec.rollout",
        "rollout.maxSurge and rollout.maxUnavailable cannot both be 0",
    ),
    (
        "rollout percentage misspelt",
        {"model": MODEL, "rollout": {"maxSurge": "25 percent"}},
        "spec.rollout.maxSurge",
        "is not valid under any of the given schemas",
    ),
    (
        "unmasked proc without a user namespace",
        {"model": MODEL, "tools": {"sandbox": {"procMount": "Unmasked"}}},
        "spec",
        "tools.sandbox.procMount Unmasked needs podTemplate.hostUsers: false",
    ),
    (
        "localhost seccomp profile without its name",
        {"model": MODEL, "tools": {"sandbox": {"seccompProfile": {"type": "Localhost"}}}},
        "spec.tools.sandbox.seccompProfile",
        "a Localhost profile needs localhostProfile",
    ),
    (
        "pod volume named like the operator's",
        {"model": MODEL, "podTemplate": {"volumes": [{"name": "cache", "emptyDir": {}}]}},
        "spec.podTemplate",
        "podTemplate.volumes may not use the names the operator mounts itself",
    ),
    (
        "pod label that would change the selector",
        {"model": MODEL, "podTemplate": {"labels": {"app.kubernetes.io/instance": "x"}}},
        "spec.podTemplate",
        "podTemplate.labels may not set app.kubernetes.io/name or app.kubernetes.io/instance",
    ),
    (
        "search without endpoint",
        {"model": MODEL, "tools": {"enabled": ["search"]}},
        "spec.tools",
        "tools.enabled lists search, so tools.config.search must give its endpoint",
    ),
    # MCP servers (issue 18)
    *[
        (case, {"model": MODEL, "tools": {"mcpServers": servers}}, where, message)
        for case, servers, where, message in [
            (
                "mcp server named conveyor",
                [{**STDIO, "name": "conveyor"}],
                "spec.tools.mcpServers[0]",
                "the name conveyor is reserved",
            ),
            (
                "mcp stdio without command",
                [{"name": "files", "transport": "stdio"}],
                "spec.tools.mcpServers[0]",
                "a stdio MCP server needs command",
            ),
            (
                "mcp stdio with a url",
                [{**STDIO, "url": "https://mcp.example.com/mcp"}],
                "spec.tools.mcpServers[0]",
                "url and headers are for streamable-http MCP servers",
            ),
            (
                "mcp stdio with headers",
                [{**STDIO, "headers": [{"name": "X-Team", "value": "a"}]}],
                "spec.tools.mcpServers[0]",
                "url and headers are for streamable-http MCP servers",
            ),
            (
                "mcp http without url",
                [{"name": "web", "transport": "streamable-http"}],
                "spec.tools.mcpServers[0]",
                "a streamable-http MCP server needs url",
            ),
            (
                "mcp http with a command",
                [{**HTTP, "command": "python3"}],
                "spec.tools.mcpServers[0]",
                "command, args and env are for stdio MCP servers",
            ),
            (
                "mcp http with env",
                [{**HTTP, "env": [{"name": "A", "value": "1"}]}],
                "spec.tools.mcpServers[0]",
                "command, args and env are for stdio MCP servers",
            ),
            (
                "mcp http without network",
                [{**HTTP, "network": False}],
                "spec.tools.mcpServers[0]",
                "a streamable-http MCP server with network: false could never be reached",
            ),
            (
                "mcp server named twice",
                [STDIO, {**HTTP, "name": "files"}],
                "spec.tools.mcpServers[1]",
                'Duplicate value: {"name": "files"}',
            ),
            (
                "mcp server name with a dot",
                [{**STDIO, "name": "my.files"}],
                "spec.tools.mcpServers[0].name",
                "does not match",
            ),
            (
                "mcp transport sse",
                [{**HTTP, "transport": "sse"}],
                "spec.tools.mcpServers[0].transport",
                "is not one of",
            ),
            (
                "mcp env with value and valueFrom",
                [{**STDIO, "env": [{"name": "T", "value": "x", "valueFrom": SECRET}]}],
                "spec.tools.mcpServers[0].env[0]",
                "takes exactly one of value and valueFrom",
            ),
            (
                "mcp header without a value",
                [{**HTTP, "headers": [{"name": "Authorization"}]}],
                "spec.tools.mcpServers[0].headers[0]",
                "takes exactly one of value and valueFrom",
            ),
            (
                "mcp secret env that would replace the sidecar's PATH",
                [{**STDIO, "env": [{"name": "PATH", "valueFrom": SECRET}]}],
                "spec.tools.mcpServers[0].env[0]",
                "an MCP env variable from a Secret is set in the tools container itself",
            ),
            (
                "mcp header name with a space",
                [{**HTTP, "headers": [{"name": "X Team", "value": "a"}]}],
                "spec.tools.mcpServers[0].headers[0].name",
                "does not match",
            ),
        ]
    ],
]


@pytest.mark.parametrize(
    ("spec", "where", "message"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_spec_is_refused_with_a_message(
    spec: dict[str, Any], where: str, message: str
) -> None:
    _, errors = admit(_obj(spec))
    assert errors, "the spec was admitted"
    assert any(e.startswith(f"{where}: ") and message in e for e in errors), errors


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a" * 58, "metadata.name must be at most 57 characters"),
        ("9lives", "metadata.name must start with a letter"),
    ],
)
def test_names_that_cannot_name_a_service_are_refused(name: str, message: str) -> None:
    _, errors = admit(_obj({"model": MODEL}, name=name))
    assert any(e.startswith("<root>: ") and message in e for e in errors), errors


def test_defaults_filled_in_reach_the_cel_rules() -> None:
    # engine and resources are absent: their {} defaults and nested defaults must be filled in
    # before the cross-field rules read self.engine.tensorParallelSize.
    stored, errors = admit(_obj({"model": MODEL}))
    assert errors == []
    assert stored["spec"]["engine"]["tensorParallelSize"] == 1
    assert stored["spec"]["resources"]["gpus"] == 0
    assert stored["spec"]["tools"]["enabled"] == ["python"]
