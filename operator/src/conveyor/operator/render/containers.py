"""The pod's two containers: the runtime (vLLM) and the tools sidecar.

Both run as an unprivileged uid with no capabilities, no privilege escalation and a read-only root
filesystem (Pod Security 'restricted'); what they write goes to emptyDir or cache volumes. The
tools container is a native sidecar (an init container with restartPolicy Always, Kubernetes
1.29+): it starts before the runtime and is stopped only after the runtime has exited, so the
runtime's drain still has its tools.
"""

from __future__ import annotations

import math
from typing import Any

from conveyor.operator.render._meta import HTTP_PORT, SIDECAR_PORT, ConveyorService
from conveyor.operator.render.mcp import tools_env
from conveyor.operator.render.tools_config import CONFIG_FILE
from conveyor.operator.spec import ProfileSpec

MODEL_DIR = "/models"
CACHE_DIR = "/var/cache/conveyor"
TMP_DIR = "/tmp"
TOOLS_CONFIG_DIR = "/etc/conveyor"
# Endpoints keep sending traffic to a terminating pod until every kube-proxy has seen it go;
# the preStop pause covers that window before the runtime stops taking requests and drains.
PRESTOP_SECONDS = 10
STARTUP_PERIOD_SECONDS = 10
RUN_AS = 65532

# vLLM, torch, triton and Hugging Face write caches and settings under $HOME or ~/.cache by
# default; with a read-only root they go to the writable mounts instead. The weights and vLLM's
# compile cache go to the cache volume (a PVC when spec.modelCache is set); the rest to /tmp.
_WRITABLE_ENV = {
    "HOME": TMP_DIR,
    "HF_HOME": f"{CACHE_DIR}/huggingface",
    "VLLM_CACHE_ROOT": f"{CACHE_DIR}/vllm",
    "VLLM_CONFIG_ROOT": f"{TMP_DIR}/.config/vllm",
    "XDG_CACHE_HOME": f"{TMP_DIR}/.cache",
    "XDG_CONFIG_HOME": f"{TMP_DIR}/.config",
    "TRITON_CACHE_DIR": f"{TMP_DIR}/.triton",
    "TORCHINDUCTOR_CACHE_DIR": f"{TMP_DIR}/torchinductor",
    "NUMBA_CACHE_DIR": f"{TMP_DIR}/numba",
    "PYTHONDONTWRITEBYTECODE": "1",
    "VLLM_NO_USAGE_STATS": "1",
}


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
        "--drain-seconds", str(spec.engine.drain_seconds),
        "--tensor-parallel-size", str(spec.engine.tensor_parallel_size),
        "--gpu-memory-utilization", str(spec.engine.gpu_memory_utilization),
    ]  # fmt: skip
    if spec.model.max_model_len is not None:
        args += ["--max-model-len", str(spec.model.max_model_len)]
    hf = spec.model.source.hugging_face
    if hf is not None and hf.revision:
        args += ["--revision", hf.revision]
    return args + list(spec.engine.extra_args)


def runtime_env(svc: ConveyorService) -> list[dict[str, Any]]:
    """The operator's variables, each replaced in place by a podTemplate.env entry of its name,
    then the other podTemplate.env entries in their order."""
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in _WRITABLE_ENV.items()]
    hf = svc.spec.model.source.hugging_face
    if hf is not None and hf.token_secret_ref is not None:
        ref = hf.token_secret_ref
        env.append(
            {
                "name": "HF_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
            }
        )
    mine = {e["name"]: dict(e) for e in svc.spec.pod_template.env}
    merged = [mine.pop(e["name"], e) for e in env]
    return merged + list(mine.values())


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


def _exec_probe(url: str, period: int, failures: int) -> dict[str, Any]:
    """A probe that prints the endpoint's answer when it fails.

    The kubelet puts an exec probe's output into the pod's `Unhealthy` event (an httpGet probe
    reports only the status code), so why a container is not ready (a tool whose isolation could
    not be set up, a disconnected sidecar) reaches the API, where the operator reads it.
    The sidecar listens on 127.0.0.1 only, which an httpGet probe cannot reach anyway.
    """
    script = (
        "import sys, urllib.request as r\n"
        "try:\n"
        f"    r.urlopen({url!r}, timeout=4)\n"
        "except Exception as e:\n"
        "    body = e.read().decode(errors='replace') if hasattr(e, 'read') else ''\n"
        "    sys.exit(f'{e} {body}'[:1000])\n"
    )
    return {
        "exec": {"command": ["python3", "-c", script]},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def _restricted(read_only: bool = True) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "readOnlyRootFilesystem": read_only,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }


def _profile(profile: ProfileSpec) -> dict[str, Any]:
    out = {"type": profile.type}
    if profile.localhost_profile:
        out["localhostProfile"] = profile.localhost_profile
    return out


def runtime_container(svc: ConveyorService, image: str) -> dict[str, Any]:
    spec = svc.spec
    mounts = [
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "cache", "mountPath": CACHE_DIR},
        {"name": "tmp", "mountPath": TMP_DIR},
    ]
    if spec.model.source.pvc is not None:
        mounts.append({"name": "model", "mountPath": MODEL_DIR, "readOnly": True})
    mounts += [dict(m) for m in spec.pod_template.volume_mounts]
    local = f"http://127.0.0.1:{HTTP_PORT}"
    container: dict[str, Any] = {
        "name": "runtime",
        "image": image,
        "imagePullPolicy": spec.engine.image_pull_policy,
        "command": ["conveyor"],
        "args": runtime_args(svc),
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "env": runtime_env(svc),
        "volumeMounts": mounts,
        "startupProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": STARTUP_PERIOD_SECONDS,
            "timeoutSeconds": 5,
            "failureThreshold": math.ceil(
                spec.engine.startup_timeout_seconds / STARTUP_PERIOD_SECONDS
            ),
        },
        "readinessProbe": _exec_probe(f"{local}/ready", 5, 2),
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SECONDS}}},
        "securityContext": _restricted(),
    }
    if spec.pod_template.env_from:
        container["envFrom"] = [dict(e) for e in spec.pod_template.env_from]
    resources = _runtime_resources(svc)
    if resources:
        container["resources"] = resources
    return container


def tools_container(svc: ConveyorService, image: str) -> dict[str, Any]:
    sandbox = svc.spec.tools.sandbox
    cpu, memory = str(sandbox.cpu), str(sandbox.memory)
    local = f"http://127.0.0.1:{SIDECAR_PORT}"
    security = _restricted()
    security["seccompProfile"] = _profile(sandbox.seccomp_profile)
    if sandbox.app_armor_profile is not None:
        security["appArmorProfile"] = _profile(sandbox.app_armor_profile)
    if sandbox.proc_mount != "Default":
        security["procMount"] = sandbox.proc_mount
    container: dict[str, Any] = {
        "name": "tools",
        "image": image,
        "imagePullPolicy": svc.spec.engine.image_pull_policy,
        # A native sidecar: started before the runtime, stopped after it.
        "restartPolicy": "Always",
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
            {"name": "tools-tmp", "mountPath": TMP_DIR},
            *(dict(m) for m in svc.spec.tools.volume_mounts),
        ],
        # The runtime starts once the sidecar answers, so its first connection finds it.
        "startupProbe": _exec_probe(f"{local}/healthz", 1, 120),
        "readinessProbe": _exec_probe(f"{local}/readyz", 10, 1),
        "livenessProbe": _exec_probe(f"{local}/healthz", 20, 3),
        "securityContext": security,
    }
    env = tools_env(svc)
    if env:
        container["env"] = env
    return container
