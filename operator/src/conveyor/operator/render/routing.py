"""The InferencePool and the HTTPRoute of the Gateway API Inference Extension (issue 19).

Field names follow the extension's published v1 CRD (config/crd/bases/
inference.networking.k8s.io_inferencepools.yaml in kubernetes-sigs/gateway-api-inference-extension);
the tests validate what is rendered here against a vendored copy of it.
"""

from __future__ import annotations

from typing import Any

from conveyor.operator.render._meta import HTTP_PORT, ConveyorService

POOL_API_VERSION = "inference.networking.k8s.io/v1"


def inference_pool(svc: ConveyorService) -> dict[str, Any] | None:
    pool = svc.spec.routing.inference_pool
    if pool is None:
        return None
    epp = pool.endpoint_picker
    return {
        "apiVersion": POOL_API_VERSION,
        "kind": "InferencePool",
        "metadata": svc.metadata(svc.name, "runtime"),
        "spec": {
            # The Deployment's selector: exactly this service's pods, none of another's.
            "selector": {"matchLabels": svc.selector_labels()},
            "targetPorts": [{"number": HTTP_PORT}],
            "endpointPickerRef": {
                "kind": "Service",
                "name": epp.name,
                "port": {"number": epp.port},
                "failureMode": epp.failure_mode,
            },
        },
    }


def http_route(svc: ConveyorService) -> dict[str, Any] | None:
    route = svc.spec.routing.http_route
    if route is None:
        return None
    parent: dict[str, Any] = {
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "name": route.gateway_name,
    }
    if route.gateway_namespace:
        parent["namespace"] = route.gateway_namespace
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": svc.metadata(svc.name, "runtime"),
        "spec": {
            "parentRefs": [parent],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": route.path_prefix}}],
                    "backendRefs": [
                        {
                            "group": "inference.networking.k8s.io",
                            "kind": "InferencePool",
                            "name": svc.name,
                        }
                    ],
                }
            ],
        },
    }
