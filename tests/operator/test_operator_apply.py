"""What the operator sends: the whole desired state of every child, so removing a field removes it.

The real Reconciler and API client run against the kmock emulator (no API server can run here).
kmock merges an apply patch into the stored object rather than doing server-side apply, so these
tests check what the operator *sends*: after each optional field of each sample is removed from a
ConveyorService, every child whose desired state changed is applied whole (server-side apply,
one field manager, forced), which makes a real API server drop the field; a child no longer
wanted is deleted; an unchanged child is left alone.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml
from conftest import Cluster, kube_for

from conveyor.operator._schema import camel
from conveyor.operator.drift import fingerprinted
from conveyor.operator.handlers import Reconciler
from conveyor.operator.render import Images, render
from conveyor.operator.spec import ConveyorServiceSpec

NS = "serving"
CVS = f"/apis/conveyor.dev/v1alpha1/namespaces/{NS}/conveyorservices"
MERGE = "application/merge-patch+json"
SAMPLES = sorted((Path(__file__).resolve().parents[2] / "manifests" / "samples").glob("*.yaml"))
SAMPLE_OBJECTS = {p.stem.split("-", 1)[1]: yaml.safe_load(p.read_text()) for p in SAMPLES}
IMAGES = Images.local()


def required_paths() -> set[tuple[str, ...]]:
    """Spec paths the schema requires (removing them is refused, not an optional field)."""
    import dataclasses
    import typing

    found: set[tuple[str, ...]] = set()

    def walk(cls: Any, path: tuple[str, ...]) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            key = (*path, camel(f.name))
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                found.add(key)
            tp = hints[f.name]
            inner = [a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)] or [tp]
            if dataclasses.is_dataclass(inner[0]):
                walk(inner[0], key)

    walk(ConveyorServiceSpec, ())
    return found


def optional_paths(spec: dict[str, Any], path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key of the spec, nested ones too, that the schema lets a user leave out."""
    found = []
    for key, value in spec.items():
        here = (*path, key)
        if here not in REQUIRED:
            found.append(here)
        if isinstance(value, dict) and not (here and here[-1] in FREE_FORM):
            found += optional_paths(value, here)
    return found


REQUIRED = required_paths()
# Maps whose keys are data, not fields (a label, a tool's settings): removed whole.
FREE_FORM = {"nodeSelector", "labels", "annotations", "config", "behavior", "affinity"}


def without(spec: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    out = copy.deepcopy(spec)
    node = out
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return out


def removal_patch(path: tuple[str, ...]) -> dict[str, Any]:
    patch: dict[str, Any] = {path[-1]: None}
    for key in reversed(path[:-1]):
        patch = {key: patch}
    return {"spec": patch}


def sent(cluster: Cluster) -> tuple[dict[str, dict[str, Any]], set[str], list[Any]]:
    """The children applied (by kind), the ones deleted, and the apply requests, since the last
    call."""
    applied: dict[str, dict[str, Any]] = {}
    deleted: set[str] = set()
    applies = []
    for r in cluster.take_requests():
        if r.resource is None or r.resource.plural == "conveyorservices":
            continue
        if r.method == kmock.method.PATCH and isinstance(r.data, dict) and "kind" in r.data:
            body = copy.deepcopy(r.data)
            for key in EMULATOR_FIELDS:  # written into the recorded body by conftest's Emulator
                body["metadata"].pop(key, None)
            applied[body["kind"]] = body
            applies.append(r)
        elif r.method == kmock.method.DELETE:
            deleted.add(r.resource.plural)
    return applied, deleted, applies


def desired(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    # The emulator serves monitoring.coreos.com and the add-on APIs of issue 19, as a cluster
    # with the Prometheus Operator, the Inference Extension and KEDA does.
    rendered = render(obj, images=IMAGES, service_monitors=True)
    return {c["kind"]: fingerprinted(c) for c in rendered}


EMULATOR_FIELDS = ("generation", "resourceVersion")
PLURALS = {
    "HorizontalPodAutoscaler": "horizontalpodautoscalers",
    "PodDisruptionBudget": "poddisruptionbudgets",
    "NetworkPolicy": "networkpolicies",
    "ServiceMonitor": "servicemonitors",
    "InferencePool": "inferencepools",
    "HTTPRoute": "httproutes",
    "ScaledObject": "scaledobjects",
}


@pytest.mark.parametrize("sample", SAMPLE_OBJECTS)
async def test_removing_each_optional_field_reaches_the_children(
    cluster: Cluster, sample: str
) -> None:
    obj = copy.deepcopy(SAMPLE_OBJECTS[sample])
    obj["metadata"]["namespace"] = NS
    name, spec = obj["metadata"]["name"], obj["spec"]
    status, created = await cluster.call("POST", CVS, obj)
    assert status in (200, 201), created
    reconciler = Reconciler(lambda: kube_for(cluster), IMAGES)
    await reconciler.reconcile_named(NS, name)
    # One field at a time, nested fields before their parents, until only what is required is
    # left: each removal is checked against the state the previous one left.
    paths = sorted(optional_paths(spec), key=len, reverse=True)
    assert len(paths) >= 10
    changed = 0
    for path in paths:
        current = await cluster.get(f"{CVS}/{name}")
        assert current is not None
        before = desired(current)
        sent(cluster)
        status, _ = await cluster.call("PATCH", f"{CVS}/{name}", removal_patch(path), MERGE)
        assert status == 200
        spec = without(spec, path)
        await reconciler.reconcile_named(NS, name)
        current = await cluster.get(f"{CVS}/{name}")
        assert current is not None and current["spec"] == spec, path
        after = desired(current)
        applied, deleted, requests = sent(cluster)

        where = ".".join(path)
        # Every child whose desired state changed is sent whole; the others are not sent.
        assert applied == {k: v for k, v in after.items() if before.get(k) != v}, where
        assert deleted == {PLURALS[k] for k in before.keys() - after.keys()}, where
        for r in requests:
            assert r.headers.get("Content-Type") == "application/apply-patch+yaml", where
            assert r.params.get("fieldManager") == "conveyor-operator", where
            assert r.params.get("force") == "true", where
        changed += bool(applied or deleted)
        # The removal shows in what was sent: the value is gone from the child it set.
        if path in SPOT_CHECKS:
            assert SPOT_CHECKS[path](applied), where
    assert spec.keys() == {"model"}
    # Most removals change a child; the rest removed a value equal to its default.
    assert changed >= len(paths) // 2


def _pod(applied: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return applied["Deployment"]["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def _runtime(applied: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return _pod(applied)["containers"][0]  # type: ignore[no-any-return]


def _tools(applied: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (tools,) = [c for c in _pod(applied)["initContainers"] if c["name"] == "tools"]
    return tools  # type: ignore[no-any-return]


# The removals the issue names, checked by hand on top of the general rule.
SPOT_CHECKS = {
    ("nodeSelector",): lambda a: "nodeSelector" not in _pod(a),
    ("resources", "cpu"): lambda a: (
        "cpu" not in _runtime(a).get("resources", {}).get("requests", {})
    ),
    ("resources", "memory"): lambda a: (
        "memory" not in _runtime(a).get("resources", {}).get("limits", {})
    ),
    ("tolerations",): lambda a: all(
        t.get("key") != "dedicated" for t in _pod(a).get("tolerations", [])
    ),
    ("podTemplate", "priorityClassName"): lambda a: "priorityClassName" not in _pod(a),
    # Issue 18: a removed MCP server takes its tools.yaml entry and its Secret variables along.
    ("tools", "mcpServers"): lambda a: (
        "mcp_servers" not in a["ConfigMap"]["data"]["tools.yaml"] and "env" not in _tools(a)
    ),
    ("tools", "volumeMounts"): lambda a: all(
        m["name"] != "mcp-servers" for m in _tools(a)["volumeMounts"]
    ),
}


async def test_removing_one_mcp_server_removes_its_entry_and_variables(cluster: Cluster) -> None:
    obj = copy.deepcopy(SAMPLE_OBJECTS["mcp"])
    obj["metadata"]["namespace"] = NS
    name = obj["metadata"]["name"]
    await cluster.call("POST", CVS, obj)
    reconciler = Reconciler(lambda: kube_for(cluster), IMAGES)
    await reconciler.reconcile_named(NS, name)
    servers = obj["spec"]["tools"]["mcpServers"]
    assert [s["name"] for s in servers] == ["notes", "search"]
    first, _, _ = sent(cluster)
    assert [e["name"] for e in _tools(first)["env"]] == ["CONVEYOR_MCP_SEARCH_AUTHORIZATION"]
    patch = {"spec": {"tools": {"mcpServers": servers[:1]}}}
    status, _ = await cluster.call("PATCH", f"{CVS}/{name}", patch, MERGE)
    assert status == 200
    await reconciler.reconcile_named(NS, name)
    applied, deleted, _ = sent(cluster)
    assert set(applied) == {"ConfigMap", "Deployment"} and not deleted
    assert list(yaml.safe_load(applied["ConfigMap"]["data"]["tools.yaml"])["mcp_servers"]) == [
        "notes"
    ]
    # The search server's Authorization variable is gone; the whole env is sent, so a real API
    # server drops it (server-side apply), and the pods roll on the new checksum.
    assert "env" not in _tools(applied)


async def test_one_variable_from_two_secrets_is_reported_and_nothing_applied(
    cluster: Cluster,
) -> None:
    # The CRD cannot see it (the names meet only once derived): the operator reports it.
    obj = copy.deepcopy(SAMPLE_OBJECTS["mcp"])
    obj["metadata"]["namespace"] = NS
    search = obj["spec"]["tools"]["mcpServers"][1]
    # Both servers' Authorization would be CONVEYOR_MCP_SEARCH__AUTHORIZATION.
    other = {**copy.deepcopy(search), "name": "search-"}
    other["headers"][1]["valueFrom"]["secretKeyRef"]["name"] = "another"
    obj["spec"]["tools"]["mcpServers"] = [{**search, "name": "search_"}, other]
    await cluster.call("POST", CVS, obj)
    await Reconciler(lambda: kube_for(cluster), IMAGES).reconcile_named(NS, "mcp-demo")
    applied, deleted, _ = sent(cluster)
    assert applied == {} and not deleted
    stored = await cluster.get(f"{CVS}/mcp-demo")
    assert stored is not None
    (degraded,) = [c for c in stored["status"]["conditions"] if c["type"] == "Degraded"]
    assert degraded["reason"] == "InvalidSpec"
    message = degraded["message"]
    assert "CONVEYOR_MCP_SEARCH__AUTHORIZATION would come from two Secret keys" in message


async def test_a_child_is_applied_again_only_when_it_drifts(cluster: Cluster) -> None:
    obj = copy.deepcopy(SAMPLE_OBJECTS["cpu-demo"])
    obj["metadata"]["namespace"] = NS
    await cluster.call("POST", CVS, obj)
    reconciler = Reconciler(lambda: kube_for(cluster), IMAGES)
    await reconciler.reconcile_named(NS, obj["metadata"]["name"])
    sent(cluster)
    await reconciler.reconcile_named(NS, obj["metadata"]["name"])
    assert sent(cluster)[0] == {}  # nothing changed: nothing written
    path = f"/apis/apps/v1/namespaces/{NS}/deployments/{obj['metadata']['name']}"
    await cluster.call("PATCH", path, {"metadata": {"annotations": None}}, MERGE)
    sent(cluster)
    await reconciler.reconcile_named(NS, obj["metadata"]["name"])
    assert list(sent(cluster)[0]) == ["Deployment"]
