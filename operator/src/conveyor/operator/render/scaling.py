"""The HorizontalPodAutoscaler and the PodDisruptionBudget.

The autoscaler scales the Deployment. A spec with autoscaling has no `replicas` (a CEL rule keeps
the two apart), and the operator then leaves the Deployment's replica count out of what it
applies, so the autoscaler is its only writer and a GitOps tool has nothing to fight over.
"""

from __future__ import annotations

from typing import Any

from conveyor.operator.render._meta import ConveyorService


def horizontal_pod_autoscaler(svc: ConveyorService) -> dict[str, Any] | None:
    auto = svc.spec.autoscaling
    if auto is None or auto.engine != "hpa":  # KEDA makes its own HPA (render/keda.py)
        return None
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": svc.name},
        "minReplicas": auto.min_replicas,
        "maxReplicas": auto.max_replicas,
        "metrics": [
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": auto.metric},
                    "target": {"type": "AverageValue", "averageValue": str(auto.target)},
                },
            }
        ],
    }
    if auto.behavior:
        spec["behavior"] = auto.behavior
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": svc.metadata(svc.name, "runtime"),
        "spec": spec,
    }


def fewest_replicas(svc: ConveyorService) -> int:
    auto = svc.spec.autoscaling
    return auto.min_replicas if auto is not None else svc.spec.desired_replicas


def pod_disruption_budget(svc: ConveyorService) -> dict[str, Any] | None:
    # With one replica a budget would either block node drains forever or protect nothing.
    if fewest_replicas(svc) <= 1:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": svc.metadata(svc.name, "runtime"),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": svc.selector_labels()}},
    }
