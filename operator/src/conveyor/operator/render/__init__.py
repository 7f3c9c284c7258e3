"""Rendering: a ConveyorService object in, the desired children out. Pure; no API access."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conveyor.operator.render._meta import MANAGED_BY, ConveyorService
from conveyor.operator.render.deployment import deployment
from conveyor.operator.render.images import Images
from conveyor.operator.render.keda import scaled_object
from conveyor.operator.render.network import network_policy, service, service_monitor
from conveyor.operator.render.routing import http_route, inference_pool
from conveyor.operator.render.scaling import horizontal_pod_autoscaler, pod_disruption_budget
from conveyor.operator.render.tools_config import checksum, config_map


@dataclass(frozen=True)
class ChildKind:
    """A kind of child the operator may own, with the API path parts to reach it."""

    api_version: str
    kind: str
    plural: str


CHILD_KINDS = [
    ChildKind("v1", "ConfigMap", "configmaps"),
    ChildKind("apps/v1", "Deployment", "deployments"),
    ChildKind("v1", "Service", "services"),
    ChildKind("monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors"),
    ChildKind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
    ChildKind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    ChildKind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
    ChildKind("inference.networking.k8s.io/v1", "InferencePool", "inferencepools"),
    ChildKind("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes"),
    ChildKind("keda.sh/v1alpha1", "ScaledObject", "scaledobjects"),
]


def requested_add_on_kinds(svc: ConveyorService) -> list[ChildKind]:
    """Children of add-on APIs (Inference Extension, Gateway API, KEDA) that the spec asks for.

    A cluster may not serve them; the operator checks before it applies one (issue 19).
    """
    auto = svc.spec.autoscaling
    asked = {
        "InferencePool": svc.spec.routing.inference_pool,
        "HTTPRoute": svc.spec.routing.http_route,
        "ScaledObject": auto.keda if auto is not None else None,
    }
    return [kind for kind in CHILD_KINDS if asked.get(kind.kind) is not None]


def render(
    obj: dict[str, Any], *, images: Images | None = None, service_monitors: bool = False
) -> list[dict[str, Any]]:
    """The children a ConveyorService should have, in apply order.

    `images` are the operator's default images (its configuration; `Images.local()` when not
    given). `service_monitors` says whether the cluster serves monitoring.coreos.com (only the
    operator can find out); without it no ServiceMonitor is rendered even when the spec asks.
    """
    svc = ConveyorService.from_object(obj)
    cm = config_map(svc)
    children = [cm, deployment(svc, checksum(cm), images or Images.local()), service(svc)]
    if service_monitors and svc.spec.metrics.service_monitor:
        children.append(service_monitor(svc))
    optional_children = (
        horizontal_pod_autoscaler(svc),
        pod_disruption_budget(svc),
        network_policy(svc),
        inference_pool(svc),
        http_route(svc),
        scaled_object(svc),
    )
    for optional in optional_children:
        if optional is not None:
            children.append(optional)
    return children


__all__ = [
    "CHILD_KINDS",
    "MANAGED_BY",
    "ChildKind",
    "ConveyorService",
    "Images",
    "render",
    "requested_add_on_kinds",
]
