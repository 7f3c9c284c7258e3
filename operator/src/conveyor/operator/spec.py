"""The ConveyorService spec: the typed source of the CRD schema and of every rendered child.

Each dataclass is one object of the schema; `prop` carries the description, default and
constraints the API server enforces; `__cel__` holds the cross-field rules (CEL) with the message
a person sees when `kubectl apply` refuses a spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from conveyor.operator._schema import Quantity, load, prop
from conveyor.operator.spec_mcp import McpServerSpec, secret_env
from conveyor.operator.spec_pod import (
    NAMED_OBJECT,
    NetworkPolicySpec,
    PodTemplateSpec,
    ProfileSpec,
    RolloutSpec,
    SecretKeyRef,
)
from conveyor.operator.spec_routing import KedaSpec, RoutingSpec

GROUP = "conveyor.dev"
VERSION = "v1alpha1"
KIND = "ConveyorService"
PLURAL = "conveyorservices"
SINGULAR = "conveyorservice"
SHORT_NAMES = ["cvs"]
API_VERSION = f"{GROUP}/{VERSION}"

# vLLM's names for the JSON formats, Conveyor's for the code and plan formats.
TOOL_CALL_PARSERS = ["hermes", "llama3_json", "mistral", "pythonic", "code", "plan"]
AUTOSCALING_METRIC_PATTERN = (
    r"^(vllm:num_requests_waiting|vllm:kv_cache_usage_perc|conveyor_[a-z0-9_]+)$"
)
_TOOL_NAME = r"^[a-z][a-z0-9_]*$"
_SET = {"x-kubernetes-list-type": "set"}
_BY_NAME = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}


@dataclass
class HuggingFaceSource:
    """Download the model from the Hugging Face Hub at start (cached in modelCache if set)."""

    token_secret_ref: SecretKeyRef | None = prop(
        "Secret key holding a Hugging Face token, for gated or private models.", default=None
    )
    revision: str | None = prop("Branch, tag or commit of the model repository.", default=None)


@dataclass
class PVCSource:
    """Read the model from a PersistentVolumeClaim that already holds its files."""

    claim_name: str = prop("Name of the PersistentVolumeClaim.", minLength=1)
    path: str = prop(
        "Directory of the model inside the volume; model.name is then only a label.",
        default="",
        pattern=r"^[^/].*$|^$",
    )


@dataclass
class ModelSource:
    """Where the weights come from: the Hugging Face Hub (the default) or a volume."""

    __cel__: ClassVar[list[tuple[str, str]]] = [
        (
            "!(has(self.huggingFace) && has(self.pvc))",
            "model.source takes either huggingFace or pvc, not both",
        ),
    ]
    hugging_face: HuggingFaceSource | None = prop(
        "Download from the Hugging Face Hub.", default=None
    )
    pvc: PVCSource | None = prop("Read from a PersistentVolumeClaim.", default=None)


@dataclass
class ModelSpec:
    """The served model."""

    name: str = prop(
        "Hugging Face id (Qwen/Qwen2.5-7B-Instruct) or a path inside the image.", minLength=1
    )
    source: ModelSource = prop("Where the weights come from.", default=ModelSource())
    served_name: str | None = prop(
        "The model name clients send; defaults to model.name.", default=None, minLength=1
    )
    tool_call_parser: str = prop(
        "How the model writes tool calls.", default="hermes", enum=TOOL_CALL_PARSERS
    )
    max_model_len: int | None = prop(
        "Context length (prompt plus output tokens); defaults to the model's.",
        default=None,
        minimum=16,
    )


@dataclass
class EngineSpec:
    """The runtime container: the Conveyor runtime around vLLM."""

    image: str | None = prop(
        "Runtime image. Default: the operator's --runtime-image, or --runtime-cpu-image when "
        "resources.gpus is 0 (set from the chart's images.* values); status.images shows the one "
        "in use.",
        default=None,
        minLength=1,
    )
    image_pull_policy: str = prop(
        "Image pull policy.", default="IfNotPresent", enum=["Always", "IfNotPresent", "Never"]
    )
    tensor_parallel_size: int = prop(
        "GPUs one model replica is split across.", default=1, minimum=1, maximum=64
    )
    gpu_memory_utilization: float = prop(
        "Fraction of accelerator memory vLLM may use.",
        default=0.9,
        exclusiveMinimum=True,
        minimum=0,
        maximum=1,
    )
    extra_args: list[str] = prop(
        "More vLLM engine arguments, passed through as written.", default=[], maxItems=128
    )
    shm_size: Quantity = prop(
        "Size of /dev/shm (a memory emptyDir) for tensor-parallel workers.", default="2Gi"
    )
    startup_timeout_seconds: int = prop(
        "How long the model may take to load before the pod is restarted.",
        default=1800,
        minimum=60,
    )
    drain_seconds: int = prop(
        "How long in-flight requests (their tool calls included) may run after the pod is told "
        "to stop; the runtime gets it as --drain-seconds and stops taking new requests at once.",
        default=60,
        minimum=0,
        maximum=3600,
    )


@dataclass
class ResourcesSpec:
    """Resources of each runtime container (the tools container is sized by tools.sandbox)."""

    gpus: int = prop("GPUs per replica.", default=0, minimum=0, maximum=64)
    gpu_resource: str = prop(
        "Extended resource name of the GPU.", default="nvidia.com/gpu", minLength=1
    )
    cpu: Quantity | None = prop("CPU request.", default=None)
    memory: Quantity | None = prop("Memory request and limit.", default=None)


@dataclass
class AutoscalingSpec:
    """A HorizontalPodAutoscaler that scales this ConveyorService through its scale subresource."""

    __cel__: ClassVar[list[tuple[str, str]]] = [
        (
            "self.minReplicas <= self.maxReplicas",
            "autoscaling.minReplicas must not be greater than autoscaling.maxReplicas",
        ),
        # Issue 19: KEDA, the autoscaler that can reach zero.
        (
            "self.engine == 'keda' || self.minReplicas >= 1",
            "autoscaling.minReplicas 0 needs autoscaling.engine keda (an HPA cannot scale to zero)",
        ),
        (
            "(self.engine == 'keda') == has(self.keda)",
            "autoscaling.keda is required with autoscaling.engine keda and only allowed with it",
        ),
    ]
    max_replicas: int = prop("Most replicas.", minimum=1, maximum=1000)
    min_replicas: int = prop(
        "Fewest replicas; 0 only with engine keda.", default=1, minimum=0, maximum=1000
    )
    metric: str = prop(
        "Per-pod metric to scale on (served through the custom metrics API, e.g. by "
        "prometheus-adapter): vllm:num_requests_waiting, vllm:kv_cache_usage_perc or a "
        "conveyor_* metric.",
        default="vllm:num_requests_waiting",
        pattern=AUTOSCALING_METRIC_PATTERN,
    )
    target: Quantity = prop("Average value per pod the autoscaler aims for.", default="5")
    behavior: dict[str, Any] = prop(
        "The autoscaler's scaleUp/scaleDown behavior (a Kubernetes "
        "HorizontalPodAutoscalerBehavior: stabilizationWindowSeconds, policies, selectPolicy); "
        "empty keeps Kubernetes' defaults.",
        default={},
    )
    engine: str = prop(
        "hpa: a HorizontalPodAutoscaler on `metric` (needs the custom metrics API); keda: a KEDA "
        "ScaledObject on Prometheus queries, which can scale to zero.",
        default="hpa",
        enum=["hpa", "keda"],
    )
    keda: KedaSpec | None = prop("KEDA settings; required with engine keda.", default=None)


@dataclass
class SandboxSpec:
    """Limits of the tools container, where model-written code runs."""

    cpu: Quantity = prop("CPU of the tools container.", default="1")
    memory: Quantity = prop("Memory of the tools container.", default="1Gi")
    timeout_seconds: int = prop(
        "Wall-clock limit of one tool invocation.", default=30, minimum=1, maximum=3600
    )
    network: bool = prop("Whether tool workers may open network connections.", default=False)
    seccomp_profile: ProfileSpec = prop(
        "Seccomp profile of the tools container. RuntimeDefault blocks the unprivileged user "
        "namespaces the sandbox is built on (docs/deploy.md, 'Tool sandbox in the pod'); a "
        "Localhost profile that allows them lets the sidecar isolate tools.",
        default=ProfileSpec(),
    )
    app_armor_profile: ProfileSpec | None = prop(
        "AppArmor profile of the tools container; on nodes that restrict unprivileged user "
        "namespaces (Ubuntu 24.04) a Localhost profile with the `userns,` rule. Default: the "
        "runtime's.",
        default=None,
    )
    proc_mount: str = prop(
        "Unmasked lets the sidecar mount a fresh /proc for each tool's pid namespace; it needs "
        "podTemplate.hostUsers: false.",
        default="Default",
        enum=["Default", "Unmasked"],
    )


@dataclass
class ToolsSpec:
    """The tools sidecar: which tools run and how."""

    __cel__: ClassVar[list[tuple[str, str]]] = [
        (
            "self.config.all(name, name in self.enabled)",
            "tools.config has settings for a tool that is not in tools.enabled",
        ),
        (
            "!('search' in self.enabled) || 'search' in self.config",
            "tools.enabled lists search, so tools.config.search must give its endpoint",
        ),
    ]
    image: str | None = prop(
        "Tools sidecar image. Default: the operator's --tools-image (the chart's images.* "
        "values); status.images shows the one in use.",
        default=None,
        minLength=1,
    )
    enabled: list[str] = prop(
        "Names of the tools the model may call (python, sqlite, search, calculator, planner).",
        default=["python"],
        minItems=1,
        maxItems=32,
        items={"type": "string", "pattern": _TOOL_NAME},
        extra=_SET,
    )
    mode: str = prop(
        "partial runs a tool while its call is being written; sequential waits for the whole "
        "call (the baseline).",
        default="partial",
        enum=["partial", "sequential"],
    )
    sandbox: SandboxSpec = prop("Limits of the tools container.", default=SandboxSpec())
    config: dict[str, dict[str, Any]] = prop(
        "Settings per tool, by tool name; written to the tools ConfigMap as they are.",
        default={},
        # Bounds keep the CEL rules' estimated cost under the API server's budget.
        maxProperties=32,
    )
    mcp_servers: list[McpServerSpec] = prop(
        "MCP servers whose tools the model may call, served as server.tool beside the built-in "
        "tools (docs/tools.md); written to the tools ConfigMap's mcp_servers.",
        default=[],
        maxItems=16,
        extra=_BY_NAME,
    )
    volume_mounts: list[dict[str, Any]] = prop(
        "Mounts of podTemplate.volumes in the tools container (Kubernetes VolumeMount objects), "
        "e.g. the program of a stdio MCP server that is not in the tools image; every tool's "
        "sandbox shows them read-only (tools.yaml isolation.expose_paths).",
        default=[],
        maxItems=16,
        items={**NAMED_OBJECT, "required": ["name", "mountPath"]},
    )


@dataclass
class MetricsSpec:
    """Prometheus scraping."""

    service_monitor: bool = prop(
        "Create a ServiceMonitor (when the Prometheus Operator is installed).", default=False
    )
    interval: str = prop(
        "Scrape interval.", default="30s", pattern=r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
    )


@dataclass
class ModelCacheSpec:
    """A PersistentVolumeClaim for downloaded weights, so a restart does not download again."""

    claim_name: str = prop("Name of the PersistentVolumeClaim.", minLength=1)


@dataclass
class ConveyorServiceSpec:
    """One served model with its tools."""

    __cel__: ClassVar[list[tuple[str, str]]] = [
        (
            "self.resources.gpus == 0 || self.resources.gpus % self.engine.tensorParallelSize == 0",
            "resources.gpus must be a multiple of engine.tensorParallelSize",
        ),
        (
            "self.engine.tensorParallelSize == 1 || "
            "self.resources.gpus >= self.engine.tensorParallelSize",
            "engine.tensorParallelSize greater than 1 needs at least that many resources.gpus",
        ),
        (
            "!(has(self.replicas) && has(self.autoscaling))",
            "spec.replicas and spec.autoscaling are mutually exclusive: the autoscaler owns the "
            "replica count, so remove spec.replicas (or spec.autoscaling)",
        ),
        (
            "self.tools.sandbox.procMount == 'Default' || "
            "(has(self.podTemplate.hostUsers) && !self.podTemplate.hostUsers)",
            "tools.sandbox.procMount Unmasked needs podTemplate.hostUsers: false (Kubernetes "
            "allows an unmasked /proc only in a pod's own user namespace)",
        ),
    ]
    model: ModelSpec = prop("The served model.")
    replicas: int | None = prop(
        "Number of pods; 1 when unset. Leave it unset with autoscaling, which owns the count.",
        default=None,
        minimum=0,
    )
    engine: EngineSpec = prop("The runtime container.", default=EngineSpec())
    resources: ResourcesSpec = prop("Resources per replica.", default=ResourcesSpec())
    autoscaling: AutoscalingSpec | None = prop(
        "Scale on a serving metric with a HorizontalPodAutoscaler.", default=None
    )
    routing: RoutingSpec = prop(
        "Routing through the Gateway API Inference Extension.", default=RoutingSpec()
    )
    rollout: RolloutSpec = prop("How pods are replaced on a change.", default=RolloutSpec())
    tools: ToolsSpec = prop("The tools sidecar.", default=ToolsSpec())
    metrics: MetricsSpec = prop("Prometheus scraping.", default=MetricsSpec())
    model_cache: ModelCacheSpec | None = prop("Volume for downloaded weights.", default=None)
    pod_template: PodTemplateSpec = prop("Additions to the pods.", default=PodTemplateSpec())
    network_policy: NetworkPolicySpec = prop("Ingress to the pods.", default=NetworkPolicySpec())
    node_selector: dict[str, str] = prop("Pod node selector.", default={})
    tolerations: list[dict[str, Any]] = prop(
        "Pod tolerations (a GPU toleration is added when resources.gpus > 0).",
        default=[],
        maxItems=64,
        items={
            "type": "object",
            "description": "A Kubernetes Toleration.",
            "properties": {
                "key": {"type": "string", "description": "Taint key; empty matches every key."},
                "operator": {
                    "type": "string",
                    "enum": ["Exists", "Equal"],
                    "description": "Exists, or Equal to value.",
                },
                "value": {"type": "string", "description": "Taint value for Equal."},
                "effect": {
                    "type": "string",
                    "enum": ["NoSchedule", "PreferNoSchedule", "NoExecute"],
                    "description": "Taint effect to tolerate; empty matches every effect.",
                },
                "tolerationSeconds": {
                    "type": "integer",
                    "description": "How long a NoExecute taint is tolerated.",
                },
            },
        },
    )
    affinity: dict[str, Any] = prop("Pod affinity (a Kubernetes Affinity object).", default={})

    @property
    def desired_replicas(self) -> int:
        """Pods wanted now when no autoscaler decides (the spec's, or 1)."""
        return 1 if self.replicas is None else self.replicas


def parse_spec(spec: dict[str, Any]) -> ConveyorServiceSpec:
    """The typed spec, with defaults filled in; `SpecError` when it does not fit the types."""
    typed: ConveyorServiceSpec = load(ConveyorServiceSpec, spec)
    secret_env(typed.tools.mcp_servers)  # two values for one variable: SpecError
    return typed
