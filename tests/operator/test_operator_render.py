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
from pod_security import restricted_violations

from conveyor.operator.render import Images, render

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


IMAGES = Images("reg.local/runtime:9", "reg.local/runtime:9-cpu", "reg.local/tools:9")


def children(spec: dict[str, Any], monitors: bool = False) -> dict[str, dict[str, Any]]:
    rendered = render(cvs(spec), images=IMAGES, service_monitors=monitors)
    out = {o["kind"]: o for o in rendered}
    assert len(out) == len(rendered), "one child per kind"
    return out


def pod(spec: dict[str, Any]) -> dict[str, Any]:
    return children(spec)["Deployment"]["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def container(spec: dict[str, Any], name: str) -> dict[str, Any]:
    p = pod(spec)
    (found,) = [c for c in p["containers"] + p.get("initContainers", []) if c["name"] == name]
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
    "engine": {
        "image": "registry.local/runtime:1",
        "imagePullPolicy": "Always",
        "tensorParallelSize": 2,
        "gpuMemoryUtilization": 0.85,
        "extraArgs": ["--enable-prefix-caching"],
        "shmSize": "8Gi",
        "startupTimeoutSeconds": 3600,
        "drainSeconds": 120,
    },
    "resources": {"gpus": 2, "cpu": "8", "memory": "64Gi"},
    "autoscaling": {
        "minReplicas": 2,
        "maxReplicas": 5,
        "target": "3",
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 600}},
    },
    "rollout": {"maxSurge": 0, "maxUnavailable": "50%"},
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
    "podTemplate": {
        "labels": {"team": "ml", "app.kubernetes.io/component": "mine"},
        "annotations": {"note": "hi", "conveyor.dev/tools-config-checksum": "mine"},
        "runtimeClassName": "gvisor",
        "topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"}
        ],
        "volumes": [{"name": "extra", "configMap": {"name": "extra"}}],
        "volumeMounts": [{"name": "extra", "mountPath": "/etc/extra"}],
        "env": [
            {"name": "VLLM_LOGGING_LEVEL", "value": "DEBUG"},
            {"name": "HF_HOME", "value": "/var/cache/conveyor/hf"},
        ],
        "envFrom": [{"configMapRef": {"name": "settings"}}],
        "priorityClassName": "inference",
        "imagePullSecrets": ["regcred"],
        "serviceAccountName": "runner",
    },
    "networkPolicy": {"ingressFrom": [{"namespaceSelector": {"matchLabels": {"team": "ml"}}}]},
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
    for obj in render(cvs(spec), images=IMAGES, service_monitors=True):
        if obj["kind"] in ("ServiceMonitor", "InferencePool", "HTTPRoute", "ScaledObject"):
            continue  # CRD types kubernetes-validate has no schema for; see their own tests
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


def test_minimal_spec_renders_the_base_children() -> None:
    assert sorted(children({"model": MODEL})) == [
        "ConfigMap", "Deployment", "NetworkPolicy", "Service",
    ]  # fmt: skip


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
    assert flag(args, "--drain-seconds") == "120"  # spec.engine.drainSeconds reaches the runtime
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


def test_token_comes_from_its_secret_and_pod_template_env_wins() -> None:
    c = container(FULL, "runtime")
    env = c["env"]
    assert {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}},
    } in env
    # podTemplate.env replaces the operator's variable of the same name, in its place...
    names = [e["name"] for e in env]
    assert names.count("HF_HOME") == 1 and names[names.index("HF_HOME")] == "HF_HOME"
    assert {"name": "HF_HOME", "value": "/var/cache/conveyor/hf"} in env
    # ...and adds the others last, in their order.
    assert env[-1] == {"name": "VLLM_LOGGING_LEVEL", "value": "DEBUG"}
    assert c["envFrom"] == [{"configMapRef": {"name": "settings"}}]
    default_env = container({"model": MODEL}, "runtime")["env"]
    assert {"name": "HF_HOME", "value": "/var/cache/conveyor/huggingface"} in default_env


def test_probes_drain_and_startup_budget() -> None:
    c = container(FULL, "runtime")
    # The readiness probe prints /ready's answer when it fails: the reason reaches the events.
    probe = " ".join(c["readinessProbe"]["exec"]["command"])
    assert "127.0.0.1:8000/ready" in probe and "sys.exit" in probe
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 3600
    prestop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert prestop > 0
    # The pod may take the preStop pause, the whole drain and the engine's shutdown.
    assert pod(FULL)["terminationGracePeriodSeconds"] > 120 + prestop


def test_the_readiness_probe_reports_why_it_fails() -> None:
    """Run the rendered probe script against a server that answers 503 with a reason."""
    import http.server
    import subprocess
    import sys
    import threading

    class NotReady(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(503)
            self.end_headers()
            self.wfile.write(b'{"tools": {"python": "network isolation unavailable"}}')

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotReady)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        script = container(FULL, "tools")["readinessProbe"]["exec"]["command"][2]
        script = script.replace("127.0.0.1:8001", f"127.0.0.1:{server.server_address[1]}")
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
        )
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 1
    assert "503" in done.stderr and "network isolation unavailable" in done.stderr


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
    assert p["automountServiceAccountToken"] is False
    strategy = children(FULL)["Deployment"]["spec"]["strategy"]["rollingUpdate"]
    assert strategy == {"maxSurge": 0, "maxUnavailable": "50%"}


def test_pod_template_additions_and_their_precedence() -> None:
    template = children(FULL)["Deployment"]["spec"]["template"]
    p = template["spec"]
    assert p["priorityClassName"] == "inference"
    assert p["imagePullSecrets"] == [{"name": "regcred"}]
    assert p["serviceAccountName"] == "runner"
    assert p["runtimeClassName"] == "gvisor"
    assert p["topologySpreadConstraints"] == FULL["podTemplate"]["topologySpreadConstraints"]
    assert {"name": "extra", "configMap": {"name": "extra"}} in p["volumes"]
    mounts = container(FULL, "runtime")["volumeMounts"]
    assert {"name": "extra", "mountPath": "/etc/extra"} in mounts
    # The tools container, which runs model-written code, gets none of the additions.
    tools = container(FULL, "tools")
    assert "envFrom" not in tools and "env" not in tools
    assert all(m["name"] != "extra" for m in tools["volumeMounts"])
    # The operator's labels and annotation win over the podTemplate's; the others are kept.
    labels, annotations = template["metadata"]["labels"], template["metadata"]["annotations"]
    assert labels["team"] == "ml" and labels["app.kubernetes.io/component"] == "runtime"
    assert annotations["note"] == "hi"
    assert annotations["conveyor.dev/tools-config-checksum"] != "mine"


def test_other_gpu_vendors_use_their_resource_name() -> None:
    spec = {"model": MODEL, "resources": {"gpus": 1, "gpuResource": "amd.com/gpu"}}
    assert container(spec, "runtime")["resources"]["limits"] == {"amd.com/gpu": "1"}


@pytest.mark.parametrize("gpus", [0, 1])
def test_default_rollout_keeps_a_replica_serving(gpus: int) -> None:
    # A replacement pod starts before an old one stops, GPU or not: with one replica the service
    # never goes dark for a model change when the cluster has room for the extra pod.
    spec = {"model": MODEL, "resources": {"gpus": gpus}}
    strategy = children(spec)["Deployment"]["spec"]["strategy"]
    assert strategy == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }


def test_cpu_only_pods_have_no_gpu() -> None:
    c = container({"model": MODEL}, "runtime")
    assert "resources" not in c
    assert "tolerations" not in pod({"model": MODEL})


def test_shared_memory_and_model_cache_volumes() -> None:
    volumes = {v["name"]: v for v in pod(FULL)["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "8Gi"}
    assert volumes["cache"] == {"name": "cache", "persistentVolumeClaim": {"claimName": "weights"}}
    assert {v["name"]: v for v in pod({"model": MODEL})["volumes"]}["cache"]["emptyDir"] == {}
    mounts = {m["name"]: m["mountPath"] for m in container(FULL, "runtime")["volumeMounts"]}
    assert mounts["dshm"] == "/dev/shm"


def test_tools_container_is_a_native_sidecar_that_outlives_the_runtime() -> None:
    p = pod(FULL)
    # An init container with restartPolicy Always (Kubernetes 1.29+) starts before the runtime
    # and is stopped only after the runtime has exited, so the drain keeps its tools.
    (tools,) = p["initContainers"]
    assert tools["name"] == "tools" and tools["restartPolicy"] == "Always"
    assert [c["name"] for c in p["containers"]] == ["runtime"]
    # The runtime starts once the sidecar answers.
    assert "127.0.0.1:8001/healthz" in " ".join(tools["startupProbe"]["exec"]["command"])


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


def test_autoscaler_owns_the_deployment_replicas() -> None:
    found = children(FULL)
    hpa = found["HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "demo",
    }
    # The operator applies no replica count, so it never fights the autoscaler.
    assert "replicas" not in found["Deployment"]["spec"]
    assert hpa["spec"]["behavior"] == {"scaleDown": {"stabilizationWindowSeconds": 600}}
    assert (
        "behavior"
        not in children({"model": MODEL, "autoscaling": {"maxReplicas": 2}})[
            "HorizontalPodAutoscaler"
        ]["spec"]
    )
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
        ({"autoscaling": {"minReplicas": 1, "maxReplicas": 4}}, False),
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
    assert children({"model": MODEL})["Deployment"]["spec"]["replicas"] == 1


@pytest.mark.parametrize(
    ("spec", "runtime", "tools"),
    [
        ({"model": MODEL}, "reg.local/runtime:9-cpu", "reg.local/tools:9"),
        ({"model": MODEL, "resources": {"gpus": 1}}, "reg.local/runtime:9", "reg.local/tools:9"),
        (FULL, "registry.local/runtime:1", "registry.local/tools:1"),
    ],
    ids=["cpu", "gpu", "override"],
)
def test_images_come_from_the_operator_unless_the_spec_names_them(
    spec: dict[str, Any], runtime: str, tools: str
) -> None:
    assert container(spec, "runtime")["image"] == runtime
    assert container(spec, "tools")["image"] == tools
    parsed = cvs(spec)
    from conveyor.operator.render import ConveyorService

    assert IMAGES.in_use(ConveyorService.from_object(parsed).spec) == {
        "runtime": runtime,
        "tools": tools,
    }


def test_cpu_sample_runs_the_cpu_image() -> None:
    (sample,) = [p for p in SAMPLES if p.stem.endswith("cpu-demo")]
    spec = yaml.safe_load(sample.read_text())["spec"]
    assert "image" not in spec.get("engine", {})
    assert container(spec, "runtime")["image"] == IMAGES.runtime_cpu
    assert Images.from_registry("r.example/team", "1.2").runtime_cpu == (
        "r.example/team/conveyor-runtime:1.2-cpu"
    )


@pytest.mark.parametrize("spec", VARIANTS.values(), ids=VARIANTS.keys())
def test_pods_meet_pod_security_restricted(spec: dict[str, Any]) -> None:
    p = pod(spec)
    assert restricted_violations(p) == []
    runtime = container(spec, "runtime")["securityContext"]
    assert runtime["runAsNonRoot"] is True and runtime["runAsUser"] != 0
    assert runtime["readOnlyRootFilesystem"] is True
    assert runtime["allowPrivilegeEscalation"] is False
    assert runtime["capabilities"] == {"drop": ["ALL"]}
    assert p["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    # With a read-only root, every place vLLM and its libraries write is a mount.
    mounts = {m["mountPath"] for m in container(spec, "runtime")["volumeMounts"]}
    assert {"/tmp", "/dev/shm", "/var/cache/conveyor"} <= mounts
    env = {e["name"]: e.get("value") for e in container(spec, "runtime")["env"]}
    for var in ("HOME", "HF_HOME", "VLLM_CACHE_ROOT", "XDG_CACHE_HOME", "TRITON_CACHE_DIR"):
        assert any(env[var].startswith(m) for m in mounts), var


def test_the_restricted_check_refuses_what_it_should() -> None:
    p = pod({"model": MODEL})
    bad = copy.deepcopy(p)
    bad["containers"][0]["securityContext"]["runAsNonRoot"] = False
    bad["initContainers"][0]["securityContext"]["capabilities"] = {"add": ["SYS_ADMIN"]}
    bad["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    bad["initContainers"][0]["securityContext"]["procMount"] = "Unmasked"
    assert len(restricted_violations(bad)) == 5


def test_tool_sandbox_options_reach_the_tools_container() -> None:
    spec = {
        "model": MODEL,
        "podTemplate": {"hostUsers": False, "runtimeClassName": "gvisor"},
        "tools": {
            "sandbox": {
                "seccompProfile": {"type": "Localhost", "localhostProfile": "conveyor-tools.json"},
                "appArmorProfile": {"type": "Localhost", "localhostProfile": "conveyor-tools"},
                "procMount": "Unmasked",
            }
        },
    }
    p = pod(spec)
    sc = container(spec, "tools")["securityContext"]
    assert sc["seccompProfile"] == {"type": "Localhost", "localhostProfile": "conveyor-tools.json"}
    assert sc["appArmorProfile"] == {"type": "Localhost", "localhostProfile": "conveyor-tools"}
    assert sc["procMount"] == "Unmasked"
    assert p["hostUsers"] is False and p["runtimeClassName"] == "gvisor"
    assert restricted_violations(p) == []  # an unmasked /proc in its own user namespace
    # The runtime keeps the runtime's default profiles.
    assert "seccompProfile" not in container(spec, "runtime")["securityContext"]
    for obj in render(cvs(spec), images=IMAGES):
        kubernetes_validate.validate(obj, "1.35.0", strict=True)


def test_network_policy_lets_in_the_runtime_port_only() -> None:
    policy = children(FULL)["NetworkPolicy"]
    assert policy["spec"]["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/name": "conveyor", "app.kubernetes.io/instance": "demo"}
    }
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": 8000, "protocol": "TCP"}]
    assert rule["from"] == FULL["networkPolicy"]["ingressFrom"]
    assert "from" not in children({"model": MODEL})["NetworkPolicy"]["spec"]["ingress"][0]
    off = {"model": MODEL, "networkPolicy": {"enabled": False}}
    assert "NetworkPolicy" not in children(off)
