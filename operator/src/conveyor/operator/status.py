"""Status: what the operator reports on a ConveyorService, worked out from what it saw.

Pure functions: the facts only the operator can gather (a missing Secret, the GPUs nodes offer),
the Deployment as it is, and the previous status go in; problems, conditions and the events worth
posting come out. Handlers gather the inputs and write the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conveyor.operator.render import ConveyorService


@dataclass(frozen=True)
class Problem:
    """Something that keeps the service from working that the API server could not refuse."""

    reason: str
    message: str


@dataclass(frozen=True)
class ClusterFacts:
    """What the operator found in the cluster for one ConveyorService."""

    missing_secrets: tuple[str, ...] = ()
    missing_claims: tuple[str, ...] = ()
    # The most GPUs any one node offers; None when the operator may not list nodes.
    largest_gpu_node: int | None = None
    service_monitors: bool = False


def find_problems(svc: ConveyorService, facts: ClusterFacts) -> list[Problem]:
    spec, ns = svc.spec, svc.namespace
    problems: list[Problem] = []
    hf = spec.model.source.hugging_face
    token = hf.token_secret_ref if hf is not None else None
    if token is not None and token.name in facts.missing_secrets:
        problems.append(
            Problem(
                "SecretNotFound",
                f"Secret {ns}/{token.name} (model.source.huggingFace.tokenSecretRef) does not "
                f"exist; create it with: kubectl -n {ns} create secret generic {token.name} "
                f"--from-literal={token.key}=<hugging face token>",
            )
        )
    for name in spec.image_pull_secrets:
        if name in facts.missing_secrets:
            problems.append(
                Problem("SecretNotFound", f"image pull Secret {ns}/{name} does not exist")
            )
    for claim in facts.missing_claims:
        problems.append(
            Problem(
                "PersistentVolumeClaimNotFound",
                f"PersistentVolumeClaim {ns}/{claim} does not exist",
            )
        )
    gpus = spec.resources.gpus
    if gpus and facts.largest_gpu_node is not None and facts.largest_gpu_node < gpus:
        problems.append(
            Problem(
                "InsufficientGPUs",
                f"each replica needs {gpus} {spec.resources.gpu_resource} but the largest node "
                f"offers {facts.largest_gpu_node}; pods will stay Pending",
            )
        )
    return problems


def _condition(kind: str, ok: bool, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }


def _deployment_failure(deployment: dict[str, Any] | None) -> tuple[str, str] | None:
    if deployment is None:
        return None
    for cond in deployment.get("status", {}).get("conditions", []):
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return "ProgressDeadlineExceeded", cond.get("message", "the rollout is stuck")
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            return "ReplicaFailure", cond.get("message", "pods cannot be created")
    return None


def conditions(
    svc: ConveyorService, deployment: dict[str, Any] | None, problems: list[Problem]
) -> list[dict[str, Any]]:
    """Ready, Progressing and Degraded, without transition times."""
    gen = svc.generation
    desired = svc.spec.replicas
    status = (deployment or {}).get("status", {})
    replicas = status.get("replicas", 0)
    ready = status.get("readyReplicas", 0)
    updated = status.get("updatedReplicas", 0)
    available = status.get("availableReplicas", 0)
    dep_generation = (deployment or {}).get("metadata", {}).get("generation", 0)

    failure = _deployment_failure(deployment)
    if problems:
        degraded = _condition(
            "Degraded", True, problems[0].reason, "; ".join(p.message for p in problems), gen
        )
    elif failure is not None:
        degraded = _condition("Degraded", True, failure[0], failure[1], gen)
    else:
        degraded = _condition("Degraded", False, "AsExpected", "no problems found", gen)

    if deployment is None:
        progressing = _condition("Progressing", True, "Creating", "creating the Deployment", gen)
    elif (
        status.get("observedGeneration", 0) < dep_generation
        or updated < desired
        or replicas > desired
        or available < desired
    ):
        progressing = _condition(
            "Progressing",
            True,
            "RollingOut",
            f"{updated} of {desired} pods updated, {available} available",
            gen,
        )
    else:
        progressing = _condition(
            "Progressing", False, "RolloutComplete", f"{desired} pods up to date", gen
        )

    if desired == 0:
        ready_cond = _condition("Ready", False, "ScaledToZero", "spec.replicas is 0", gen)
    elif ready >= desired:
        ready_cond = _condition("Ready", True, "ReplicasReady", f"{ready}/{desired} ready", gen)
    else:
        ready_cond = _condition(
            "Ready", False, "ReplicasNotReady", f"{ready}/{desired} replicas ready", gen
        )
    return [ready_cond, progressing, degraded]


def compute_status(
    svc: ConveyorService,
    deployment: dict[str, Any] | None,
    problems: list[Problem],
    previous: dict[str, Any],
    now: str,
) -> dict[str, Any]:
    """The whole status; a condition keeps its lastTransitionTime while its status holds."""
    before = {c.get("type"): c for c in previous.get("conditions", []) or []}
    conds = []
    for cond in conditions(svc, deployment, problems):
        old = before.get(cond["type"])
        same = old is not None and old.get("status") == cond["status"]
        changed = old.get("lastTransitionTime") if same and old else None
        conds.append({**cond, "lastTransitionTime": changed or now})
    dep_status = (deployment or {}).get("status", {})
    return {
        "conditions": conds,
        "observedGeneration": svc.generation,
        "replicas": dep_status.get("replicas", 0),
        "readyReplicas": dep_status.get("readyReplicas", 0),
        "selector": svc.selector(),
        "endpoint": svc.endpoint,
    }


def warnings_to_post(previous: dict[str, Any], current: dict[str, Any]) -> list[Problem]:
    """A Warning event when the service becomes Degraded or its reason changes, not every pass."""

    def degraded(status: dict[str, Any]) -> dict[str, Any] | None:
        for cond in status.get("conditions", []) or []:
            if cond.get("type") == "Degraded" and cond.get("status") == "True":
                return cond
        return None

    now, before = degraded(current), degraded(previous)
    if now is None:
        return []
    if before is not None and (before.get("reason"), before.get("message")) == (
        now.get("reason"),
        now.get("message"),
    ):
        return []
    return [Problem(now["reason"], now["message"])]
