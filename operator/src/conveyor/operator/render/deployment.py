"""The Deployment: the runtime container (vLLM) and the tools sidecar in one pod.

The two containers share the pod's network namespace, so the runtime reaches the sidecar on
127.0.0.1 and the sidecar, which runs model-written code, is never reachable from outside the pod.
The spec's podTemplate adds to the pod; where it names what the operator sets too, the operator's
selector labels and checksum annotation win and podTemplate.env replaces the operator's variable.
"""

from __future__ import annotations

from typing import Any

from conveyor.operator.render._meta import CHECKSUM_ANNOTATION, ConveyorService
from conveyor.operator.render.containers import (
    PRESTOP_SECONDS,
    RUN_AS,
    runtime_container,
    tools_container,
)
from conveyor.operator.render.images import Images

# After the drain, the runtime shuts vLLM's engine down and the kubelet then stops the sidecar.
SHUTDOWN_SECONDS = 30


def _volumes(svc: ConveyorService) -> list[dict[str, Any]]:
    spec = svc.spec
    volumes: list[dict[str, Any]] = [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": str(spec.engine.shm_size)}},
        # No size limit: torch's and triton's compile caches vary with the model.
        {"name": "tmp", "emptyDir": {}},
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
    return volumes + [dict(v) for v in spec.pod_template.volumes]


def _tolerations(svc: ConveyorService) -> list[dict[str, Any]]:
    tolerations = [dict(t) for t in svc.spec.tolerations]
    gpu = svc.spec.resources.gpu_resource
    if svc.spec.resources.gpus and not any(t.get("key") == gpu for t in tolerations):
        tolerations.append({"key": gpu, "operator": "Exists", "effect": "NoSchedule"})
    return tolerations


def pod_spec(svc: ConveyorService, images: Images) -> dict[str, Any]:
    spec = svc.spec
    extra = spec.pod_template
    pod: dict[str, Any] = {
        "initContainers": [tools_container(svc, images.tools_for(spec))],
        "containers": [runtime_container(svc, images.runtime_for(spec))],
        "volumes": _volumes(svc),
        "terminationGracePeriodSeconds": (
            PRESTOP_SECONDS + spec.engine.drain_seconds + SHUTDOWN_SECONDS
        ),
        # The sidecar runs untrusted code: no API token in the pod, no service env clutter.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            # Makes a model cache PVC writable by that uid.
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    optional = {
        "serviceAccountName": extra.service_account_name,
        "priorityClassName": extra.priority_class_name,
        "runtimeClassName": extra.runtime_class_name,
        "hostUsers": extra.host_users,
        "nodeSelector": dict(spec.node_selector),
        "tolerations": _tolerations(svc),
        "affinity": spec.affinity,
        "topologySpreadConstraints": [dict(t) for t in extra.topology_spread_constraints],
        "imagePullSecrets": [{"name": n} for n in extra.image_pull_secrets],
    }
    # Unset and empty values are left out, so removing one from the spec removes it here.
    pod.update({k: v for k, v in optional.items() if v is not None and v != {} and v != []})
    return pod


def _strategy(svc: ConveyorService) -> dict[str, Any]:
    rollout = svc.spec.rollout

    def value(v: str) -> int | str:
        return int(v) if v.isdigit() else v

    rolling = {
        "maxSurge": value(rollout.max_surge),
        "maxUnavailable": value(rollout.max_unavailable),
    }
    return {"type": "RollingUpdate", "rollingUpdate": rolling}


def deployment(svc: ConveyorService, config_checksum: str, images: Images) -> dict[str, Any]:
    extra = svc.spec.pod_template
    spec: dict[str, Any] = {
        "selector": {"matchLabels": svc.selector_labels()},
        "strategy": _strategy(svc),
        # Loading weights is slow: a rollout is stuck only after the startup budget is spent.
        "progressDeadlineSeconds": svc.spec.engine.startup_timeout_seconds + 600,
        "template": {
            "metadata": {
                "labels": {**extra.labels, **svc.labels("runtime")},
                "annotations": {**extra.annotations, CHECKSUM_ANNOTATION: config_checksum},
            },
            "spec": pod_spec(svc, images),
        },
    }
    # With an autoscaler the replica count is its to set: the operator leaves the field alone.
    if svc.spec.autoscaling is None:
        spec = {"replicas": svc.spec.desired_replicas, **spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": svc.metadata(svc.name, "runtime"),
        "spec": spec,
    }
