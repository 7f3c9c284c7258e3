"""The Deployment: the runtime container (vLLM) and the tools sidecar in one pod.

The two containers share the pod's network namespace, so the runtime reaches the sidecar on
127.0.0.1 and the sidecar, which runs model-written code, is never reachable from outside the pod.
"""

from __future__ import annotations

import math
from typing import Any

from conveyor.operator.render._meta import (
    CHECKSUM_ANNOTATION,
    HTTP_PORT,
    SIDECAR_PORT,
    ConveyorService,
)
from conveyor.operator.render.tools_config import CONFIG_FILE

MODEL_DIR = "/models"
CACHE_DIR = "/var/cache/conveyor"
TOOLS_CONFIG_DIR = "/etc/conveyor"
# Endpoints keep sending traffic to a terminating pod until every kube-proxy has seen it go;
# the preStop pause covers that window before the runtime starts draining.
PRESTOP_SECONDS = 10
STARTUP_PERIOD_SECONDS = 10
SIDECAR_UID = 65532


def _model_arg(svc: ConveyorService) -> str:
    pvc = svc.spec.model.source.pvc
    if pvc is None:
        return svc.spec.model.name
    return f"{MODEL_DIR}/{pvc.path}".rstrip("/") if pvc.path else MODEL_DIR


def runtime_args(svc: ConveyorService) -> list[str]:
    """The `conveyor serve` arguments: Conveyor's own, then vLLM's pass-through engine args."""
    spec = svc.spec
    args = [
        "serve",
        "--model", _model_arg(svc),
        "--served-model-name", spec.model.served_name or spec.model.name,
        "--tool-call-parser", spec.model.tool_call_parser,
        "--sidecar", f"http://127.0.0.1:{SIDECAR_PORT}",
        "--mode", spec.tools.mode,
        "--host", "0.0.0.0",
        "--port", str(HTTP_PORT),
        "--tensor-parallel-size", str(spec.engine.tensor_parallel_size),
        "--gpu-memory-utilization", str(spec.engine.gpu_memory_utilization),
    ]  # fmt: skip
    if spec.model.max_model_len is not None:
        args += ["--max-model-len", str(spec.model.max_model_len)]
    hf = spec.model.source.hugging_face
    if hf is not None and hf.revision:
        args += ["--revision", hf.revision]
    return args + list(spec.engine.extra_args)


def _runtime_env(svc: ConveyorService) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [{"name": "HF_HOME", "value": f"{CACHE_DIR}/huggingface"}]
    hf = svc.spec.model.source.hugging_face
    if hf is not None and hf.token_secret_ref is not None:
        ref = hf.token_secret_ref
        env.append(
            {
                "name": "HF_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
            }
        )
    return env + [dict(e) for e in svc.spec.engine.env]


def _runtime_resources(svc: ConveyorService) -> dict[str, Any]:
    res = svc.spec.resources
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if res.cpu is not None:
        requests["cpu"] = str(res.cpu)
    if res.memory is not None:
        requests["memory"] = limits["memory"] = str(res.memory)
    if res.gpus:
        # Extended resources are requested through limits alone.
        limits[res.gpu_resource] = str(res.gpus)
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _http_probe(path: str, port: str | int, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def runtime_container(svc: ConveyorService) -> dict[str, Any]:
    spec = svc.spec
    mounts = [
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "cache", "mountPath": CACHE_DIR},
    ]
    if spec.model.source.pvc is not None:
        mounts.append({"name": "model", "mountPath": MODEL_DIR, "readOnly": True})
    container: dict[str, Any] = {
        "name": "runtime",
        "image": spec.engine.image,
        "imagePullPolicy": spec.engine.image_pull_policy,
        "command": ["conveyor"],
        "args": runtime_args(svc),
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "env": _runtime_env(svc),
        "volumeMounts": mounts,
        "startupProbe": _http_probe(
            "/health",
            "http",
            STARTUP_PERIOD_SECONDS,
            math.ceil(spec.engine.startup_timeout_seconds / STARTUP_PERIOD_SECONDS),
        ),
        "readinessProbe": _http_probe("/ready", "http", 5, 3),
        "livenessProbe": _http_probe("/health", "http", 10, 3),
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SECONDS}}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    resources = _runtime_resources(svc)
    if resources:
        container["resources"] = resources
    return container


def _exec_probe(path: str, period: int) -> dict[str, Any]:
    # The sidecar listens on 127.0.0.1 only, which an httpGet probe (sent to the pod IP by the
    # kubelet) cannot reach; the probe runs inside the container instead.
    url = f"http://127.0.0.1:{SIDECAR_PORT}{path}"
    return {
        "exec": {
            "command": ["python", "-c", f"import urllib.request; urllib.request.urlopen({url!r})"]
        },
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    }


def tools_container(svc: ConveyorService) -> dict[str, Any]:
    sandbox = svc.spec.tools.sandbox
    cpu, memory = str(sandbox.cpu), str(sandbox.memory)
    return {
        "name": "tools",
        "image": svc.spec.tools.image,
        "imagePullPolicy": svc.spec.engine.image_pull_policy,
        "command": ["conveyor-tools"],
        "args": [
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(SIDECAR_PORT),
            "--config",
            f"{TOOLS_CONFIG_DIR}/{CONFIG_FILE}",
        ],  # fmt: skip
        "resources": {
            "requests": {"cpu": cpu, "memory": memory},
            "limits": {"cpu": cpu, "memory": memory},
        },
        "volumeMounts": [
            {"name": "tools-config", "mountPath": TOOLS_CONFIG_DIR, "readOnly": True},
            {"name": "tools-tmp", "mountPath": "/tmp"},
        ],
        "readinessProbe": _exec_probe("/readyz", 10),
        "livenessProbe": _exec_probe("/healthz", 20),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": SIDECAR_UID,
            "runAsGroup": SIDECAR_UID,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


def _volumes(svc: ConveyorService) -> list[dict[str, Any]]:
    spec = svc.spec
    volumes: list[dict[str, Any]] = [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": str(spec.engine.shm_size)}},
        {"name": "tools-config", "configMap": {"name": svc.config_map_name}},
        {"name": "tools-tmp", "emptyDir": {"sizeLimit": "1Gi"}},
    ]
    if spec.model_cache is not None:
        claim = {"claimName": spec.model_cache.claim_name}
        volumes.append({"name": "cache", "persistentVolumeClaim": claim})
    else:
        volumes.append({"name": "cache", "emptyDir": {}})
    if spec.model.source.pvc is not None:
        claim = {"claimName": spec.model.source.pvc.claim_name, "readOnly": True}
        volumes.append({"name": "model", "persistentVolumeClaim": claim})
    return volumes


def _tolerations(svc: ConveyorService) -> list[dict[str, Any]]:
    tolerations = [dict(t) for t in svc.spec.tolerations]
    gpu = svc.spec.resources.gpu_resource
    if svc.spec.resources.gpus and not any(t.get("key") == gpu for t in tolerations):
        tolerations.append({"key": gpu, "operator": "Exists", "effect": "NoSchedule"})
    return tolerations


def pod_spec(svc: ConveyorService) -> dict[str, Any]:
    spec = svc.spec
    pod: dict[str, Any] = {
        "containers": [runtime_container(svc), tools_container(svc)],
        "volumes": _volumes(svc),
        "terminationGracePeriodSeconds": PRESTOP_SECONDS + spec.engine.drain_seconds,
        # The sidecar runs untrusted code: no API token in the pod, no service env clutter.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
    }
    if spec.service_account_name:
        pod["serviceAccountName"] = spec.service_account_name
    if spec.node_selector:
        pod["nodeSelector"] = dict(spec.node_selector)
    tolerations = _tolerations(svc)
    if tolerations:
        pod["tolerations"] = tolerations
    if spec.affinity:
        pod["affinity"] = spec.affinity
    if spec.priority_class_name:
        pod["priorityClassName"] = spec.priority_class_name
    if spec.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": n} for n in spec.image_pull_secrets]
    return pod


def _strategy(svc: ConveyorService) -> dict[str, Any]:
    if svc.spec.resources.gpus:
        # GPU nodes rarely have a spare GPU for a surge pod: replace pods one at a time instead.
        rolling = {"maxSurge": 0, "maxUnavailable": 1}
    else:
        rolling = {"maxSurge": 1, "maxUnavailable": 0}
    return {"type": "RollingUpdate", "rollingUpdate": rolling}


def deployment(svc: ConveyorService, config_checksum: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": svc.metadata(svc.name, "runtime"),
        "spec": {
            "replicas": svc.spec.replicas,
            "selector": {"matchLabels": svc.selector_labels()},
            "strategy": _strategy(svc),
            # Loading weights is slow: a rollout is stuck only after the startup budget is spent.
            "progressDeadlineSeconds": svc.spec.engine.startup_timeout_seconds + 600,
            "template": {
                "metadata": {
                    "labels": svc.labels("runtime"),
                    "annotations": {CHECKSUM_ANNOTATION: config_checksum},
                },
                "spec": pod_spec(svc),
            },
        },
    }
