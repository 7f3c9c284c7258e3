"""The routing and KEDA parts of the ConveyorService spec (issue 19).

Routing plugs the service into the Gateway API Inference Extension: an InferencePool over this
service's pods, an endpoint picker (EPP) the user deploys, and optionally an HTTPRoute from a
Gateway. KEDA is the autoscaler that can reach zero replicas; its fields live beside the HPA's in
`AutoscalingSpec`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from conveyor.operator._schema import prop

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


@dataclass
class EndpointPickerSpec:
    """The endpoint picker (EPP) Service the user deployed with the extension's own chart."""

    name: str = prop("Name of the EPP's Service, in this namespace.", pattern=_DNS_LABEL)
    port: int = prop(
        "The EPP Service's gRPC ext-proc port.", default=9002, minimum=1, maximum=65535
    )
    failure_mode: str = prop(
        "What the Gateway does when the EPP does not answer: FailClose refuses the request, "
        "FailOpen sends it to any pod.",
        default="FailClose",
        enum=["FailOpen", "FailClose"],
    )


@dataclass
class InferencePoolSpec:
    """An InferencePool (inference.networking.k8s.io/v1) over this service's pods."""

    endpoint_picker: EndpointPickerSpec = prop("The endpoint picker that chooses a pod.")


@dataclass
class HTTPRouteSpec:
    """An HTTPRoute (gateway.networking.k8s.io/v1) from a Gateway to the InferencePool."""

    gateway_name: str = prop("Name of the Gateway.", pattern=_DNS_LABEL)
    gateway_namespace: str | None = prop(
        "Namespace of the Gateway; this namespace when unset.", default=None, pattern=_DNS_LABEL
    )
    path_prefix: str = prop(
        "Requests whose path starts with this go to the pool.", default="/", pattern=r"^/.*$"
    )


@dataclass
class RoutingSpec:
    """Routing through the Gateway API Inference Extension instead of the ClusterIP Service."""

    __cel__: ClassVar[list[tuple[str, str]]] = [
        (
            "!has(self.httpRoute) || has(self.inferencePool)",
            "routing.httpRoute routes to the InferencePool, so it needs routing.inferencePool",
        ),
    ]
    inference_pool: InferencePoolSpec | None = prop(
        "Render an InferencePool selecting this service's pods.", default=None
    )
    http_route: HTTPRouteSpec | None = prop(
        "Render an HTTPRoute from a Gateway to the InferencePool.", default=None
    )


@dataclass
class KedaSpec:
    """How KEDA scales: Prometheus queries of the runtime's metrics."""

    prometheus_address: str = prop(
        "URL of the Prometheus that scrapes the runtime (KEDA queries it).",
        pattern=r"^https?://.+$",
    )
    queue_target: int = prop(
        "Waiting requests (vllm:num_requests_waiting, summed over the pods) per replica.",
        default=5,
        minimum=1,
    )
    tool_concurrency_target: int = prop(
        "Tool invocations in flight (conveyor_sidecar_invocations_in_flight, summed) per replica.",
        default=16,
        minimum=1,
    )
    activation_threshold: int = prop(
        "Waiting requests or tool invocations above which KEDA wakes a service at zero.",
        default=0,
        minimum=0,
    )
    wake_query: str | None = prop(
        "PromQL query on a metric that exists while no pod runs (e.g. the Gateway's or the "
        "EPP's request count for this pool); the queue and tool queries have no series at zero "
        "replicas, so without it only an edit of minReplicas wakes a service at zero.",
        default=None,
        minLength=1,
    )
    cooldown_seconds: int = prop(
        "Seconds without activity before KEDA scales to minReplicas 0.", default=300, minimum=0
    )
