"""The Service in front of the runtime pods, and the ServiceMonitor that scrapes them."""

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
