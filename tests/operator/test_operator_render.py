"""Rendering: every spec option shows up in the children, and every child is a valid object.

kubernetes-validate checks each child against the Kubernetes 1.35 schemas in strict mode. The
ServiceMonitor is a Prometheus Operator CRD that kubernetes-validate does not carry, so it is
checked by shape only.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from conveyor.operator.render import render

UID = "3f1c2a9e-0000-4000-8000-000000000001"
MODEL = {"name": "Qwen/Qwen2.5-7B-Instruct"}
SAMPLES = sorted((Path(__file__).resolve().parents[2] / "manifests" / "samples").glob("*.yaml"))


def cvs(spec: dict[str, Any], name: str = "demo") -> dict[str, Any]:
    return {
        "apiVersion": "conveyor.dev/v1alpha1",
        "kind": "ConveyorService",
        "metadata": {"name": name, "namespace": "serving", "uid": UID, "generation": 3},
        "spec": spec,
    }


def children(spec: dict[str, Any], monitors: bool = False) -> dict[str, dict[str, Any]]:
    out = {o["kind"]: o for o in render(cvs(spec), service_monitors=monitors)}
    assert len(out) == len(render(cvs(spec), service_monitors=monitors)), "one child per kind"
    return out


def pod(spec: dict[str, Any]) -> dict[str, Any]:
    return children(spec)["Deployment"]["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def container(spec: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [c for c in pod(spec)["containers"] if c["name"] == name]
    return found  # type: ignore[no-any-return]


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


FULL = {
    "model": {
        "name": "Qwen/Qwen2.5-7B-Instruct",
        "source": {"huggingFace": {"tokenSecretRef": {"name": "hf"}, "revision": "main"}},
        "servedName": "qwen",
        "toolCallParser": "hermes",
        "maxModelLen": 8192,
    },
    "replicas": 3,
    "engine": {
        "image": "registry.local/runtime:1",
        "imagePullPolicy": "Always",
        "tensorParallelSize": 2,
        "gpuMemoryUtilization": 0.85,
        "extraArgs": ["--enable-prefix-caching"],
        "env": [{"name": "VLLM_LOGGING_LEVEL", "value": "DEBUG"}],
        "shmSize": "8Gi",
        "startupTimeoutSeconds": 3600,
        "drainSeconds": 120,
    },
    "resources": {"gpus": 2, "cpu": "8", "memory": "64Gi"},
    "autoscaling": {"minReplicas": 2, "maxReplicas": 5, "target": "3"},
    "tools": {
        "image": "registry.local/tools:1",
        "enabled": ["python", "sqlite", "search"],
        "mode": "sequential",
        "sandbox": {"cpu": "2", "memory": "2Gi", "timeoutSeconds": 45, "network": False},
        "config": {"search": {"endpoint": "http://search:8080/search"}},
    },
    "metrics": {"serviceMonitor": True, "interval": "15s"},
    "modelCache": {"claimName": "weights"},
    "nodeSelector": {"gpu": "a100"},
    "tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
    ],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                ]
            }
        }
    },
    "priorityClassName": "inference",
    "imagePullSecrets": ["regcred"],
    "serviceAccountName": "runner",
}

VARIANTS = {
    "minimal": {"model": MODEL},
    "full": FULL,
    "pvc": {"model": {"name": "llama", "source": {"pvc": {"claimName": "m", "path": "llama-3"}}}},
    "scaled-to-zero": {"model": MODEL, "replicas": 0},
    **{p.stem: yaml.safe_load(p.read_text())["spec"] for p in SAMPLES},
}


@pytest.mark.parametrize("spec", VARIANTS.values(), ids=VARIANTS.keys())
def test_every_child_is_valid_for_kubernetes_1_35(spec: dict[str, Any]) -> None:
    for obj in render(cvs(spec), service_monitors=True):
        if obj["kind"] == "ServiceMonitor":
            continue  # a CRD type kubernetes-validate has no schema for; see the shape test
        kubernetes_validate.validate(obj, "1.35.0", strict=True)


@pytest.mark.parametrize("spec", VARIANTS.values(), ids=VARIANTS.keys())
def test_every_child_is_owned_and_labelled(spec: dict[str, Any]) -> None:
    for obj in render(cvs(spec), service_monitors=True):
        meta = obj["metadata"]
        assert meta["namespace"] == "serving"
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "conveyor.dev/v1alpha1",
                "kind": "ConveyorService",
                "name": "demo",
                "uid": UID,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        labels = meta["labels"]
        assert labels["app.kubernetes.io/name"] == "conveyor"
        assert labels["app.kubernetes.io/instance"] == "demo"
        assert labels["app.kubernetes.io/managed-by"] == "conveyor-operator"
        assert labels["app.kubernetes.io/component"] in {"runtime", "tools"}


def test_render_is_pure() -> None:
    obj = cvs(copy.deepcopy(FULL))
    before = copy.deepcopy(obj)
    assert render(obj, service_monitors=True) == render(obj, service_monitors=True)
    assert obj == before


def test_minimal_spec_renders_the_three_base_children() -> None:
    assert sorted(children({"model": MODEL})) == ["ConfigMap", "Deployment", "Service"]


def test_runtime_container_runs_conveyor_serve_with_the_spec() -> None:
    c = container(FULL, "runtime")
    args = c["args"]
    assert c["command"] == ["conveyor"] and args[0] == "serve"
    assert flag(args, "--model") == "Qwen/Qwen2.5-7B-Instruct"
    assert flag(args, "--served-model-name") == "qwen"
    assert flag(args, "--tool-call-parser") == "hermes"
    assert flag(args, "--sidecar") == "http://127.0.0.1:8001"
    assert flag(args, "--mode") == "sequential"
    assert flag(args, "--port") == "8000"
    assert flag(args, "--host") == "0.0.0.0"
    assert flag(args, "--tensor-parallel-size") == "2"
    assert flag(args, "--gpu-memory-utilization") == "0.85"
    assert flag(args, "--max-model-len") == "8192"
    assert flag(args, "--revision") == "main"
    assert args[-1] == "--enable-prefix-caching"  # pass-through args come last
    assert c["image"] == "registry.local/runtime:1"
    assert c["imagePullPolicy"] == "Always"


def test_defaults_for_the_runtime() -> None:
    args = container({"model": MODEL}, "runtime")["args"]
    assert flag(args, "--served-model-name") == MODEL["name"]
    assert flag(args, "--mode") == "partial"
    assert "--max-model-len" not in args and "--revision" not in args


def test_model_from_a_volume_is_mounted_read_only() -> None:
    spec = VARIANTS["pvc"]
    c = container(spec, "runtime")
    assert flag(c["args"], "--model") == "/models/llama-3"
    assert {"name": "model", "mountPath": "/models", "readOnly": True} in c["volumeMounts"]
    volumes = {v["name"]: v for v in pod(spec)["volumes"]}
    assert volumes["model"]["persistentVolumeClaim"] == {"claimName": "m", "readOnly": True}


def test_token_comes_from_its_secret_and_env_passes_through() -> None:
    env = container(FULL, "runtime")["env"]
    assert {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}},
    } in env
    assert env[-1] == {"name": "VLLM_LOGGING_LEVEL", "value": "DEBUG"}
    assert {"name": "HF_HOME", "value": "/var/cache/conveyor/huggingface"} in env


def test_probes_drain_and_startup_budget() -> None:
    c = container(FULL, "runtime")
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 3600
    assert c["lifecycle"]["preStop"]["sleep"]["seconds"] > 0
    grace = pod(FULL)["terminationGracePeriodSeconds"]
    assert grace >= 120 + c["lifecycle"]["preStop"]["sleep"]["seconds"]


def test_gpus_resources_and_scheduling() -> None:
    c = container(FULL, "runtime")
    assert c["resources"]["limits"] == {"memory": "64Gi", "nvidia.com/gpu": "2"}
    assert c["resources"]["requests"] == {"cpu": "8", "memory": "64Gi"}
    p = pod(FULL)
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in p[
        "tolerations"
    ]
    assert FULL["tolerations"][0] in p["tolerations"]
    assert p["nodeSelector"] == {"gpu": "a100"}
    assert p["affinity"] == FULL["affinity"]
    assert p["priorityClassName"] == "inference"
    assert p["imagePullSecrets"] == [{"name": "regcred"}]
    assert p["serviceAccountName"] == "runner"
    assert p["automountServiceAccountToken"] is False
    strategy = children(FULL)["Deployment"]["spec"]["strategy"]["rollingUpdate"]
    assert strategy == {"maxSurge": 0, "maxUnavailable": 1}


def test_other_gpu_vendors_use_their_resource_name() -> None:
    spec = {"model": MODEL, "resources": {"gpus": 1, "gpuResource": "amd.com/gpu"}}
    assert container(spec, "runtime")["resources"]["limits"] == {"amd.com/gpu": "1"}


def test_cpu_only_pods_have_no_gpu_and_surge_one_pod() -> None:
    c = container({"model": MODEL}, "runtime")
    assert "resources" not in c
    assert "tolerations" not in pod({"model": MODEL})
    strategy = children({"model": MODEL})["Deployment"]["spec"]["strategy"]["rollingUpdate"]
    assert strategy == {"maxSurge": 1, "maxUnavailable": 0}


def test_shared_memory_and_model_cache_volumes() -> None:
    volumes = {v["name"]: v for v in pod(FULL)["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "8Gi"}
    assert volumes["cache"] == {"name": "cache", "persistentVolumeClaim": {"claimName": "weights"}}
    assert {v["name"]: v for v in pod({"model": MODEL})["volumes"]}["cache"]["emptyDir"] == {}
    mounts = {m["name"]: m["mountPath"] for m in container(FULL, "runtime")["volumeMounts"]}
    assert mounts["dshm"] == "/dev/shm"


def test_tools_sidecar_is_locked_down_and_sized_by_the_sandbox() -> None:
    c = container(FULL, "tools")
    assert c["image"] == "registry.local/tools:1"
    assert c["command"] == ["conveyor-tools"]
    assert c["args"] == [
        "serve",
        "--host", "127.0.0.1",
        "--port", "8001",
        "--config", "/etc/conveyor/tools.yaml",
    ]  # fmt: skip
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["resources"]["limits"] == {"cpu": "2", "memory": "2Gi"}
    assert "127.0.0.1:8001/readyz" in " ".join(c["readinessProbe"]["exec"]["command"])
    assert "127.0.0.1:8001/healthz" in " ".join(c["livenessProbe"]["exec"]["command"])


def tools_yaml(spec: dict[str, Any]) -> dict[str, Any]:
    return yaml.safe_load(children(spec)["ConfigMap"]["data"]["tools.yaml"])  # type: ignore[no-any-return]


def test_tools_config_map_holds_the_enabled_tools_and_their_settings() -> None:
    cm = children(FULL)["ConfigMap"]
    assert cm["metadata"]["name"] == "demo-tools"
    doc = tools_yaml(FULL)
    assert doc == {
        "tools": {
            "python": {"network": False},
            "sqlite": {"network": False},
            "search": {"network": True, "config": {"endpoint": "http://search:8080/search"}},
        },
        "limits": {"wall_seconds": 45},
    }
    networked = {**FULL, "tools": {**FULL["tools"], "sandbox": {"network": True}}}
    assert tools_yaml(networked)["tools"]["python"]["network"] is True


def test_tools_yaml_is_accepted_by_the_sidecar() -> None:
    config = pytest.importorskip("conveyor.tools.sidecar.config")
    parsed = config.parse_config(tools_yaml(FULL), known_tools=["python", "sqlite", "search"])
    assert sorted(parsed.tools) == ["python", "search", "sqlite"]
    assert parsed.tools["search"].config == {"endpoint": "http://search:8080/search"}


def test_config_change_changes_the_pod_template_checksum() -> None:
    def checksum(spec: dict[str, Any]) -> str:
        template = children(spec)["Deployment"]["spec"]["template"]
        return template["metadata"]["annotations"]["conveyor.dev/tools-config-checksum"]  # type: ignore[no-any-return]

    changed = copy.deepcopy(FULL)
    changed["tools"]["config"]["search"]["endpoint"] = "http://other:8080/search"
    assert checksum(FULL) != checksum(changed)
    same = copy.deepcopy(FULL)
    same["replicas"] = 4  # not in the ConfigMap: the pods need not roll for it
    assert checksum(FULL) == checksum(same)


def test_service_exposes_http_and_metrics() -> None:
    svc = children({"model": MODEL})["Service"]
    ports = {p["name"]: p for p in svc["spec"]["ports"]}
    assert ports["http"]["port"] == 8000 and ports["http"]["targetPort"] == "http"
    assert ports["metrics"]["targetPort"] == "http"
    selector = svc["spec"]["selector"]
    template = children({"model": MODEL})["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= template.items()


def test_service_monitor_only_when_asked_and_the_api_exists() -> None:
    assert "ServiceMonitor" not in children(FULL, monitors=False)
    assert "ServiceMonitor" not in children({"model": MODEL}, monitors=True)
    sm = children(FULL, monitors=True)["ServiceMonitor"]
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s"}]
    service_labels = children(FULL)["Service"]["metadata"]["labels"]
    assert sm["spec"]["selector"]["matchLabels"].items() <= service_labels.items()


def test_autoscaler_targets_the_conveyor_service() -> None:
    hpa = children(FULL)["HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "conveyor.dev/v1alpha1",
        "kind": "ConveyorService",
        "name": "demo",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["pods"]["metric"]["name"] == "vllm:num_requests_waiting"
    assert metric["pods"]["target"] == {"type": "AverageValue", "averageValue": "3"}
    assert "HorizontalPodAutoscaler" not in children({"model": MODEL})


@pytest.mark.parametrize(
    ("extra", "has_pdb"),
    [
        ({}, False),
        ({"replicas": 2}, True),
        ({"replicas": 3, "autoscaling": {"minReplicas": 1, "maxReplicas": 4}}, False),
        ({"autoscaling": {"minReplicas": 2, "maxReplicas": 4}}, True),
    ],
)
def test_disruption_budget_only_with_more_than_one_replica(
    extra: dict[str, Any], has_pdb: bool
) -> None:
    found = children({"model": MODEL, **extra})
    assert ("PodDisruptionBudget" in found) is has_pdb
    if has_pdb:
        assert found["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1


def test_replicas_follow_the_spec() -> None:
    assert children({"model": MODEL, "replicas": 4})["Deployment"]["spec"]["replicas"] == 4
    assert children({"model": MODEL, "replicas": 0})["Deployment"]["spec"]["replicas"] == 0
