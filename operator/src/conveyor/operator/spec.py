"""The ConveyorService spec: the typed source of the CRD schema and of every rendered child.

Each dataclass is one object of the schema; `prop` carries the description, default and
constraints the API server enforces; `__cel__` holds the cross-field rules (CEL) with the message
a person sees when `kubectl apply` refuses a spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from conveyor.operator._schema import Quantity, load, prop

GROUP = "conveyor.dev"
VERSION = "v1alpha1"
KIND = "ConveyorService"
PLURAL = "conveyorservices"
SINGULAR = "conveyorservice"
SHORT_NAMES = ["cvs"]
API_VERSION = f"{GROUP}/{VERSION}"

DEFAULT_RUNTIME_IMAGE = "ghcr.io/conveyor-serving/conveyor-runtime:0.1.0"
DEFAULT_TOOLS_IMAGE = "ghcr.io/conveyor-serving/conveyor-tools:0.1.0"

# vLLM's names for the JSON formats, Conveyor's for the code and plan formats.
TOOL_CALL_PARSERS = ["hermes", "llama3_json", "mistral", "pythonic", "code", "plan"]
AUTOSCALING_METRIC_PATTERN = (
    r"^(vllm:num_requests_waiting|vllm:kv_cache_usage_perc|conveyor_[a-z0-9_]+)$"
)
_DNS_SUBDOMAIN = r"^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$"
_TOOL_NAME = r"^[a-z][a-z0-9_]*$"
_SET = {"x-kubernetes-list-type": "set"}


@dataclass
class SecretKeyRef:
    """A key of a Secret in the ConveyorService's namespace."""

    name: str = prop("Name of the Secret.", minLength=1, pattern=_DNS_SUBDOMAIN)
    key: str = prop("Key inside the Secret.", default="token", minLength=1)


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

    image: str = prop("Runtime image.", default=DEFAULT_RUNTIME_IMAGE, minLength=1)
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
    env: list[dict[str, Any]] = prop(
        "More environment variables for the runtime container (Kubernetes EnvVar objects).",
        default=[],
        maxItems=128,
        items={
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string", "minLength": 1}},
            "x-kubernetes-preserve-unknown-fields": True,
        },
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
        "How long in-flight requests may run after the pod is told to stop.",
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
    ]
    max_replicas: int = prop("Most replicas.", minimum=1, maximum=1000)
    min_replicas: int = prop("Fewest replicas.", default=1, minimum=1, maximum=1000)
    metric: str = prop(
        "Per-pod metric to scale on (served through the custom metrics API, e.g. by "
        "prometheus-adapter): vllm:num_requests_waiting, vllm:kv_cache_usage_perc or a "
        "conveyor_* metric.",
        default="vllm:num_requests_waiting",
        pattern=AUTOSCALING_METRIC_PATTERN,
    )
    target: Quantity = prop("Average value per pod the autoscaler aims for.", default="5")


@dataclass
class SandboxSpec:
    """Limits of the tools container, where model-written code runs."""

    cpu: Quantity = prop("CPU of the tools container.", default="1")
    memory: Quantity = prop("Memory of the tools container.", default="1Gi")
    timeout_seconds: int = prop(
        "Wall-clock limit of one tool invocation.", default=30, minimum=1, maximum=3600
    )
    network: bool = prop("Whether tool workers may open network connections.", default=False)


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
    image: str = prop("Tools sidecar image.", default=DEFAULT_TOOLS_IMAGE, minLength=1)
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
    ]
    model: ModelSpec = prop("The served model.")
    replicas: int = prop(
        "Number of pods (the autoscaler changes it when set).", default=1, minimum=0
    )
    engine: EngineSpec = prop("The runtime container.", default=EngineSpec())
    resources: ResourcesSpec = prop("Resources per replica.", default=ResourcesSpec())
    autoscaling: AutoscalingSpec | None = prop("Scale on a serving metric.", default=None)
    tools: ToolsSpec = prop("The tools sidecar.", default=ToolsSpec())
    metrics: MetricsSpec = prop("Prometheus scraping.", default=MetricsSpec())
    model_cache: ModelCacheSpec | None = prop("Volume for downloaded weights.", default=None)
    node_selector: dict[str, str] = prop("Pod node selector.", default={})
    tolerations: list[dict[str, Any]] = prop(
        "Pod tolerations (a GPU toleration is added when resources.gpus > 0).",
        default=[],
        maxItems=64,
        items={
            "type": "object",
            "properties": {
                "key": {"type": "string"},
                "operator": {"type": "string", "enum": ["Exists", "Equal"]},
                "value": {"type": "string"},
                "effect": {
                    "type": "string",
                    "enum": ["NoSchedule", "PreferNoSchedule", "NoExecute"],
                },
                "tolerationSeconds": {"type": "integer"},
            },
        },
    )
    affinity: dict[str, Any] = prop("Pod affinity (a Kubernetes Affinity object).", default={})
    priority_class_name: str | None = prop("Pod priority class.", default=None, minLength=1)
    image_pull_secrets: list[str] = prop(
        "Names of Secrets for pulling the images.", default=[], maxItems=16, extra=_SET
    )
    service_account_name: str | None = prop(
        "Service account of the pods (its token is never mounted).", default=None, minLength=1
    )


def parse_spec(spec: dict[str, Any]) -> ConveyorServiceSpec:
    """The typed spec, with defaults filled in; `SpecError` when it does not fit the types."""
    return load(ConveyorServiceSpec, spec)  # type: ignore[no-any-return]
