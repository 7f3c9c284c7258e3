"""The pod-level parts of the ConveyorService spec: rollout, pod additions, network policy, the
security profiles of the tools container and Secret references. Split from spec.py, which imports
them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from conveyor.operator._schema import IntOrPercent, prop

_SET = {"x-kubernetes-list-type": "set"}
_BY_NAME = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}
# Kubernetes objects passed through as written (EnvVar, Volume...): the API server validates them
# when the operator applies the Deployment, and the operator reports a refusal as Degraded.
NAMED_OBJECT = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string", "minLength": 1, "description": "Its name."}},
    "x-kubernetes-preserve-unknown-fields": True,
}
_ANY_OBJECT = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
# Volumes the operator mounts itself; a podTemplate volume may not take their names.
RESERVED_VOLUMES = ["dshm", "cache", "tmp", "tools-config", "tools-tmp", "model"]
_DNS_SUBDOMAIN = r"^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$"


@dataclass
class SecretKeyRef:
    """A key of a Secret in the ConveyorService's namespace."""

    name: str = prop("Name of the Secret.", minLength=1, pattern=_DNS_SUBDOMAIN)
    key: str = prop("Key inside the Secret.", default="token", minLength=1)


@dataclass
class ProfileSpec:
    """A seccomp or AppArmor profile, as a container's securityContext names it."""

    __cel__: ClassVar[list[tuple[str, str]]] = [
        (
            "(self.type == 'Localhost') == has(self.localhostProfile)",
            "a Localhost profile needs localhostProfile, and only a Localhost profile takes one",
        ),
    ]
    type: str = prop(
        "RuntimeDefault (the container runtime's) or Localhost (a profile installed on the node); "
        "Pod Security 'restricted' allows both.",
        default="RuntimeDefault",
        enum=["RuntimeDefault", "Localhost"],
    )
    localhost_profile: str | None = prop(
        "The profile's name on the node (seccomp: a path under the kubelet's seccomp directory).",
        default=None,
        minLength=1,
    )


@dataclass
class RolloutSpec:
    """How the Deployment replaces pods when the spec changes (its RollingUpdate strategy)."""

    __cel__: ClassVar[list[tuple[str, str]]] = [
        (
            "!(string(self.maxSurge) in ['0', '0%'] && string(self.maxUnavailable) in ['0', '0%'])",
            "rollout.maxSurge and rollout.maxUnavailable cannot both be 0: "
            "no pod could be replaced",
        ),
    ]
    max_surge: IntOrPercent = prop(
        "Pods created above the desired count during a rollout. The default 1 keeps every old "
        "replica serving until its replacement is ready, when the cluster has room (a spare GPU) "
        "for one more pod; where it has none, use maxSurge 0 and maxUnavailable 1, which stops "
        "one replica before its replacement loads.",
        default=IntOrPercent("1"),
    )
    max_unavailable: IntOrPercent = prop(
        "Pods that may be unavailable during a rollout.", default=IntOrPercent("0")
    )


@dataclass
class PodTemplateSpec:
    """Additions to the pods. The operator's own settings win where both set the same key:
    selector labels, the volumes and mounts it needs, its environment variables; see
    docs/operator.md for the precedence."""

    __cel__: ClassVar[list[tuple[str, str]]] = [
        (
            "self.volumes.all(v, !(v.name in " + repr(RESERVED_VOLUMES).replace('"', "'") + "))",
            "podTemplate.volumes may not use the names the operator mounts itself: "
            + ", ".join(RESERVED_VOLUMES),
        ),
        (
            "!('app.kubernetes.io/name' in self.labels) && "
            "!('app.kubernetes.io/instance' in self.labels)",
            "podTemplate.labels may not set app.kubernetes.io/name or app.kubernetes.io/instance "
            "(the Deployment selects its pods by them)",
        ),
    ]
    labels: dict[str, str] = prop("Labels on every pod.", default={}, maxProperties=64)
    annotations: dict[str, str] = prop("Annotations on every pod.", default={}, maxProperties=64)
    runtime_class_name: str | None = prop(
        "RuntimeClass of the pods, e.g. gvisor or kata for a stronger tool sandbox.",
        default=None,
        minLength=1,
    )
    host_users: bool | None = prop(
        "false runs the pod in its own user namespace (Kubernetes 1.33+, containerd 2.0+ or "
        "CRI-O 1.25+, Linux 6.3+); unset keeps the node's.",
        default=None,
    )
    topology_spread_constraints: list[dict[str, Any]] = prop(
        "Topology spread constraints of the pods (Kubernetes TopologySpreadConstraint objects).",
        default=[],
        maxItems=16,
        items=_ANY_OBJECT,
    )
    volumes: list[dict[str, Any]] = prop(
        "More volumes (Kubernetes Volume objects), for podTemplate.volumeMounts.",
        default=[],
        maxItems=32,
        items=NAMED_OBJECT,
        extra=_BY_NAME,
    )
    volume_mounts: list[dict[str, Any]] = prop(
        "More mounts in the runtime container (Kubernetes VolumeMount objects).",
        default=[],
        maxItems=32,
        items={**NAMED_OBJECT, "required": ["name", "mountPath"]},
    )
    env: list[dict[str, Any]] = prop(
        "More environment variables of the runtime container (Kubernetes EnvVar objects); one "
        "the operator sets too (HF_HOME, HF_TOKEN, the cache paths) replaces the operator's.",
        default=[],
        maxItems=128,
        items=NAMED_OBJECT,
        extra=_BY_NAME,
    )
    env_from: list[dict[str, Any]] = prop(
        "Environment of the runtime container from ConfigMaps or Secrets (EnvFromSource objects).",
        default=[],
        maxItems=16,
        items=_ANY_OBJECT,
    )
    image_pull_secrets: list[str] = prop(
        "Names of Secrets for pulling the images.", default=[], maxItems=16, extra=_SET
    )
    service_account_name: str | None = prop(
        "Service account of the pods (its token is never mounted).", default=None, minLength=1
    )
    priority_class_name: str | None = prop("Priority class of the pods.", default=None, minLength=1)


@dataclass
class NetworkPolicySpec:
    """A NetworkPolicy that lets traffic into the pods on the runtime's port only."""

    enabled: bool = prop(
        "Render the NetworkPolicy (it takes effect where the cluster's network plugin enforces "
        "NetworkPolicies).",
        default=True,
    )
    ingress_from: list[dict[str, Any]] = prop(
        "Who may connect (Kubernetes NetworkPolicyPeer objects); empty lets any source reach the "
        "runtime's port and nothing else. In a namespace whose policies deny by default this "
        "opens that port to all: list your clients here.",
        default=[],
        maxItems=32,
        items=_ANY_OBJECT,
    )
