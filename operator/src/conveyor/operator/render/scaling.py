"""The HorizontalPodAutoscaler and the PodDisruptionBudget.

The autoscaler targets the ConveyorService itself (its `scale` subresource), not the Deployment:
the operator then stays the only writer of the Deployment's replicas, and `kubectl scale cvs`
and the autoscaler move the same number.
"""

from __future__ import annotations

from typing import Any

from conveyor.operator.render._meta import ConveyorService
from conveyor.operator.spec import API_VERSION, KIND


def horizontal_pod_autoscaler(svc: ConveyorService) -> dict[str, Any] | None:
    auto = svc.spec.autoscaling
    if auto is None:
        return None
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": svc.metadata(svc.name, "runtime"),
        "spec": {
            "scaleTargetRef": {"apiVersion": API_VERSION, "kind": KIND, "name": svc.name},
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
        },
    }


def fewest_replicas(svc: ConveyorService) -> int:
    auto = svc.spec.autoscaling
    return auto.min_replicas if auto is not None else svc.spec.replicas


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
