"""The KEDA ScaledObject: autoscaling on Prometheus queries, down to zero replicas (issue 19).

KEDA makes and owns an HPA of its own for the Deployment, so with engine keda the operator
renders no HorizontalPodAutoscaler. The queries read the series a ServiceMonitor produces for
this service (its `namespace` and `service` labels), as the chart's dashboard does.
"""

from __future__ import annotations

from typing import Any

from conveyor.operator.render._meta import ConveyorService


def _trigger(
    name: str, address: str, query: str, threshold: int, activation: int
) -> dict[str, Any]:
    return {
        "type": "prometheus",
        "name": name,
        "metadata": {
            "serverAddress": address,
            "query": query,
            "threshold": str(threshold),
            "activationThreshold": str(activation),
        },
    }


def scaled_object(svc: ConveyorService) -> dict[str, Any] | None:
    auto = svc.spec.autoscaling
    if auto is None or auto.keda is None:
        return None
    keda = auto.keda
    labels = f'namespace="{svc.namespace}", service="{svc.name}"'
    queries = [
        ("queue", f"sum(vllm:num_requests_waiting{{{labels}}})", keda.queue_target),
        (
            "tool-concurrency",
            f"sum(conveyor_sidecar_invocations_in_flight{{{labels}}})",
            keda.tool_concurrency_target,
        ),
    ]
    if keda.wake_query:
        # It counts requests, like the queue, so it shares the queue's target per replica.
        queries.append(("wake", keda.wake_query, keda.queue_target))
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": svc.name},
        "minReplicaCount": auto.min_replicas,
        "maxReplicaCount": auto.max_replicas,
        "cooldownPeriod": keda.cooldown_seconds,
        "triggers": [
            _trigger(name, keda.prometheus_address, query, target, keda.activation_threshold)
            for name, query, target in queries
        ],
    }
    if auto.behavior:
        spec["advanced"] = {"horizontalPodAutoscalerConfig": {"behavior": auto.behavior}}
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": svc.metadata(svc.name, "runtime"),
        "spec": spec,
    }
