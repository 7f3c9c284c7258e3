"""Issue 19: the InferencePool, HTTPRoute and KEDA ScaledObject a ConveyorService renders, checked
against the published CRDs of the Gateway API Inference Extension, the Gateway API and KEDA
(vendored in schemas/, see its README), and the CEL rules of the new spec fields."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import kmock
import pytest
import yaml
from conftest import Cluster, kube_for
from crdcheck import admit, apply_defaults, cel_errors, to_jsonschema

from conveyor.operator.handlers import Reconciler
from conveyor.operator.render import (
    CHILD_KINDS,
    ConveyorService,
    Images,
    render,
    requested_add_on_kinds,
)
from conveyor.operator.status import ClusterFacts, find_problems

IMAGES = Images("reg.local/runtime:9", "reg.local/runtime:9-cpu", "reg.local/tools:9")
SCHEMAS = Path(__file__).parent / "schemas"
MODEL = {"name": "Qwen/Qwen2.5-7B-Instruct"}
ROUTED = {
    "model": MODEL,
    "routing": {
        "inferencePool": {"endpointPicker": {"name": "qwen-epp"}},
        "httpRoute": {"gatewayName": "inference-gateway", "gatewayNamespace": "gateways"},
    },
    "autoscaling": {
        "engine": "keda",
        "minReplicas": 0,
        "maxReplicas": 4,
        "keda": {
            "prometheusAddress": "http://prometheus-operated.monitoring.svc:9090",
            "activationThreshold": 1,
            "wakeQuery": "sum(rate(inference_objective_request_total[1m]))",
        },
    },
}


def published_schema(api_version: str, kind: str) -> dict[str, Any]:
    """The openAPIV3Schema of `kind` at `api_version` in the vendored CRD files."""
    group, version = api_version.split("/")
    for path in SCHEMAS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        if crd["spec"]["group"] == group and crd["spec"]["names"]["kind"] == kind:
            for v in crd["spec"]["versions"]:
                if v["name"] == version and v["served"]:
                    return v["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]
    raise LookupError(f"no published CRD serves {kind} {api_version}")


def published_errors(obj: dict[str, Any]) -> list[str]:
    """What the API server with the published CRD would answer; [] when it stores the object."""
    schema = published_schema(obj["apiVersion"], obj["kind"])
    # The CRD schema does not describe metadata; the API server checks it on its own.
    body = apply_defaults(schema, {k: v for k, v in copy.deepcopy(obj).items() if k != "metadata"})
    validator = jsonschema.Draft202012Validator(to_jsonschema(schema))
    errors = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)
    ]
    return errors or cel_errors(schema, body)


def cvs(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "conveyor.dev/v1alpha1",
        "kind": "ConveyorService",
        "metadata": {"name": "qwen", "namespace": "serving", "uid": "u-1", "generation": 1},
        "spec": spec,
    }


def routed_children() -> dict[str, dict[str, Any]]:
    stored, errors = admit(cvs(ROUTED))
    assert errors == []
    return {o["kind"]: o for o in render(stored)}


@pytest.mark.parametrize("kind", ["InferencePool", "HTTPRoute", "ScaledObject"])
def test_rendered_objects_fit_the_published_crds(kind: str) -> None:
    assert published_errors(routed_children()[kind]) == []


def test_a_broken_object_is_refused_by_the_published_crds() -> None:
    pool = routed_children()["InferencePool"]
    pool["spec"]["targetPorts"] = [{"number": 8000}, {"number": 8000}]
    assert published_errors(pool) == ["spec.targetPorts: port number must be unique"]
    pool["spec"]["endpointPickerRef"].pop("port")
    assert any("port is required" in e for e in published_errors(pool))
    scaled = routed_children()["ScaledObject"]
    del scaled["spec"]["scaleTargetRef"]
    assert published_errors(scaled) == ["spec: 'scaleTargetRef' is a required property"]


def test_the_pool_selects_exactly_this_services_pods_and_port() -> None:
    kids = routed_children()
    pod_labels = kids["Deployment"]["spec"]["template"]["metadata"]["labels"]
    selector = kids["InferencePool"]["spec"]["selector"]["matchLabels"]
    assert selector == kids["Deployment"]["spec"]["selector"]["matchLabels"]
    assert (
        selector.items() <= pod_labels.items() and selector["app.kubernetes.io/instance"] == "qwen"
    )
    ports = kids["Deployment"]["spec"]["template"]["spec"]["containers"][0]["ports"]
    http = next(p["containerPort"] for p in ports if p["name"] == "http")
    assert kids["InferencePool"]["spec"]["targetPorts"] == [{"number": http}]
    epp = kids["InferencePool"]["spec"]["endpointPickerRef"]
    assert (epp["name"], epp["port"], epp["failureMode"]) == (
        "qwen-epp",
        {"number": 9002},
        "FailClose",
    )
    route = kids["HTTPRoute"]["spec"]
    assert route["parentRefs"][0]["name"] == "inference-gateway"
    assert route["parentRefs"][0]["namespace"] == "gateways"
    assert route["rules"][0]["backendRefs"][0]["kind"] == "InferencePool"
    assert route["rules"][0]["backendRefs"][0]["name"] == "qwen"


def test_keda_replaces_the_hpa_and_scales_on_queue_and_tools() -> None:
    kids = routed_children()
    assert "HorizontalPodAutoscaler" not in kids
    assert "replicas" not in kids["Deployment"]["spec"]  # KEDA's HPA owns the count
    spec = kids["ScaledObject"]["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (0, 4)
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "qwen"}
    queries = {t["name"]: t["metadata"] for t in spec["triggers"]}
    assert set(queries) == {"queue", "tool-concurrency", "wake"}
    assert (
        'vllm:num_requests_waiting{namespace="serving", service="qwen"}'
        in queries["queue"]["query"]
    )
    assert "conveyor_sidecar_invocations_in_flight" in queries["tool-concurrency"]["query"]
    assert all(m["activationThreshold"] == "1" for m in queries.values())
    assert "PodDisruptionBudget" not in kids  # zero or one replica: nothing to protect


def test_without_routing_or_keda_nothing_new_is_rendered() -> None:
    kids = {o["kind"] for o in render(cvs({"model": MODEL, "autoscaling": {"maxReplicas": 3}}))}
    assert "HorizontalPodAutoscaler" in kids
    assert not kids & {"InferencePool", "HTTPRoute", "ScaledObject"}


def test_the_operator_owns_and_prunes_the_new_kinds() -> None:
    owned = {(k.api_version, k.kind) for k in CHILD_KINDS}
    for obj in routed_children().values():
        assert (obj["apiVersion"], obj["kind"]) in owned


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"autoscaling": {"minReplicas": 0, "maxReplicas": 2}},
            "autoscaling.minReplicas 0 needs autoscaling.engine keda",
        ),
        (
            {"autoscaling": {"engine": "keda", "maxReplicas": 2}},
            "autoscaling.keda is required with autoscaling.engine keda",
        ),
        (
            {"autoscaling": {"maxReplicas": 2, "keda": {"prometheusAddress": "http://p:9090"}}},
            "autoscaling.keda is required with autoscaling.engine keda and only allowed with it",
        ),
        (
            {"routing": {"httpRoute": {"gatewayName": "gw"}}},
            "routing.httpRoute routes to the InferencePool, so it needs routing.inferencePool",
        ),
    ],
)
def test_contradictory_routing_or_scaling_is_refused(change: dict[str, Any], message: str) -> None:
    _, errors = admit(cvs({"model": MODEL, **change}))
    assert any(message in e for e in errors), errors


def test_a_missing_add_on_api_is_reported_and_not_applied() -> None:
    svc = ConveyorService.from_object(cvs(ROUTED))
    asked = requested_add_on_kinds(svc)
    assert [k.kind for k in asked] == ["InferencePool", "HTTPRoute", "ScaledObject"]
    problems = find_problems(svc, ClusterFacts(missing_apis=tuple(asked[:1])))
    assert [p.reason for p in problems] == ["APINotInstalled"]
    assert "does not serve inference.networking.k8s.io/v1 inferencepools" in problems[0].message
    assert requested_add_on_kinds(ConveyorService.from_object(cvs({"model": MODEL}))) == []


async def test_the_reconciler_reports_a_missing_api_instead_of_applying(cluster: Cluster) -> None:
    # The kopf-free reconciler against the emulated API server (tests/operator/conftest.py),
    # here without the Inference Extension installed.
    del cluster.emulator.resources["inference.networking.k8s.io/v1/inferencepools"]
    obj = cvs(ROUTED)
    del obj["metadata"]["uid"]
    collection = "/apis/conveyor.dev/v1alpha1/namespaces/serving/conveyorservices"
    status, created = await cluster.call("POST", collection, obj)
    assert status in (200, 201), created
    problems = await Reconciler(lambda: kube_for(cluster), IMAGES).reconcile(created)
    assert [p.reason for p in problems] == ["APINotInstalled"]  # no ApplyFailed, no retry
    requests = [r for r in cluster.take_requests() if r.resource is not None]
    applied = {r.resource.plural for r in requests if r.method == kmock.method.PATCH}
    assert "inferencepools" not in applied and "httproutes" in applied
    _, stored = await cluster.call("GET", f"{collection}/qwen")
    degraded = next(c for c in stored["status"]["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "APINotInstalled")
    assert "InferencePool" in degraded["message"]
    _, route = await cluster.call(
        "GET", "/apis/gateway.networking.k8s.io/v1/namespaces/serving/httproutes/qwen"
    )
    assert route["kind"] == "HTTPRoute"  # the APIs that are there are still applied
