"""The Service in front of the runtime pods, the NetworkPolicy in front of the pods, and the
ServiceMonitor that scrapes them."""

from __future__ import annotations

from typing import Any

from conveyor.operator.render._meta import HTTP_PORT, METRICS_PORT, ConveyorService


def service(svc: ConveyorService) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": svc.metadata(svc.name, "runtime"),
        "spec": {
            "type": "ClusterIP",
            "selector": svc.selector_labels(),
            "ports": [
                {"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"},
                # The runtime serves /metrics on its HTTP port; a port of its own lets a
                # ServiceMonitor or a NetworkPolicy name the scrape path apart from client traffic.
                {"name": "metrics", "port": METRICS_PORT, "targetPort": "http", "protocol": "TCP"},
            ],
        },
    }


def service_monitor(svc: ConveyorService) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": svc.metadata(svc.name, "runtime"),
        "spec": {
            "selector": {"matchLabels": svc.labels("runtime")},
            "endpoints": [
                {"port": "metrics", "path": "/metrics", "interval": svc.spec.metrics.interval}
            ],
        },
    }


def network_policy(svc: ConveyorService) -> dict[str, Any] | None:
    """Ingress to the runtime's port only: the sidecar (which runs model-written code) listens on
    127.0.0.1 anyway, and no other port of the pod is anyone's business."""
    policy = svc.spec.network_policy
    if not policy.enabled:
        return None
    rule: dict[str, Any] = {"ports": [{"port": HTTP_PORT, "protocol": "TCP"}]}
    if policy.ingress_from:
        rule["from"] = [dict(peer) for peer in policy.ingress_from]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": svc.metadata(svc.name, "runtime"),
        "spec": {
            "podSelector": {"matchLabels": svc.selector_labels()},
            "policyTypes": ["Ingress"],
            "ingress": [rule],
        },
    }
