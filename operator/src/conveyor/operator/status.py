"""Status: what the operator reports on a ConveyorService, worked out from what it saw.

Pure functions: the facts only the operator can gather (a missing claim, the pods' troubles), the
Deployment as it is, and the previous status go in; problems, conditions and the events worth
posting come out. Handlers gather the inputs and write the result.

Ready means the service serves the current spec, and only that: the Deployment controller has
seen the Deployment's latest generation, and every desired replica is updated and available with
no old pod left. Until then Progressing says why; Degraded says what is wrong and what to change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conveyor.operator.pods import PodProblem
from conveyor.operator.render import ChildKind, ConveyorService

# Problems that mean the Deployment in the cluster may not hold the current spec.
STALE_REASONS = ("ApplyFailed", "ClusterUnreachable", "InvalidSpec")


@dataclass(frozen=True)
class Problem:
    """Something that keeps the service from working that the API server could not refuse."""

    reason: str
    message: str


@dataclass(frozen=True)
class ClusterFacts:
    """What the operator found in the cluster for one ConveyorService."""

    missing_claims: tuple[str, ...] = ()
    service_monitors: bool = False
    pod_problems: tuple[PodProblem, ...] = ()
    # Kinds the spec asks for whose API the cluster does not serve (issue 19).
    missing_apis: tuple[ChildKind, ...] = ()


def find_problems(svc: ConveyorService, facts: ClusterFacts) -> list[Problem]:
    problems = [
        Problem(
            "PersistentVolumeClaimNotFound",
            f"PersistentVolumeClaim {svc.namespace}/{claim} does not exist",
        )
        for claim in facts.missing_claims
    ]
    problems += [
        Problem(
            "APINotInstalled",
            f"the spec asks for a {kind.kind}, but the cluster does not serve {kind.api_version} "
            f"{kind.plural}: install its CRD (docs/deploy.md, section 6), then restart the "
            "operator so that it watches the new kind",
        )
        for kind in facts.missing_apis
    ]
    hf = svc.spec.model.source.hugging_face
    token = hf.token_secret_ref if hf is not None else None
    for p in facts.pod_problems:
        # The kubelet says `secret "NAME" not found`; the operator itself never reads Secrets.
        if p.reason == "ContainerConfigError" and token and f'secret "{token.name}"' in p.message:
            problems.append(
                Problem(
                    "SecretNotFound",
                    f"{p.message}; create it with: kubectl -n {svc.namespace} create secret "
                    f"generic {token.name} --from-literal={token.key}=<hugging face token>",
                )
            )
        else:
            problems.append(Problem(p.reason, p.message))
    return problems


def _condition(kind: str, ok: bool, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }


def _deployment_failure(deployment: dict[str, Any] | None) -> Problem | None:
    for cond in (deployment or {}).get("status", {}).get("conditions", []):
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return Problem("ProgressDeadlineExceeded", cond.get("message", "the rollout is stuck"))
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            return Problem(cond.get("reason") or "ReplicaFailure", cond.get("message", ""))
    return None


def desired_replicas(svc: ConveyorService, deployment: dict[str, Any] | None) -> int:
    """The spec's count, or, with an autoscaler, the count it has set on the Deployment."""
    auto = svc.spec.autoscaling
    if auto is None:
        return svc.spec.desired_replicas
    replicas = ((deployment or {}).get("spec") or {}).get("replicas")
    return int(replicas) if replicas is not None else auto.min_replicas


@dataclass(frozen=True)
class Rollout:
    """Where the Deployment's rollout of the current spec stands."""

    desired: int
    replicas: int
    updated: int
    ready: int
    available: int
    observed: bool  # the controller has seen the Deployment's latest generation

    @classmethod
    def of(cls, desired: int, deployment: dict[str, Any]) -> Rollout:
        status = deployment.get("status") or {}
        generation = (deployment.get("metadata") or {}).get("generation", 0)
        return cls(
            desired=desired,
            replicas=status.get("replicas", 0),
            updated=status.get("updatedReplicas", 0),
            ready=status.get("readyReplicas", 0),
            available=status.get("availableReplicas", 0),
            observed=status.get("observedGeneration", 0) >= generation,
        )

    @property
    def complete(self) -> bool:
        d = self.desired
        return self.observed and self.updated == self.available == self.replicas == d

    def describe(self) -> str:
        if not self.observed:
            return "the Deployment controller has not yet seen the latest spec"
        old = self.replicas - self.updated
        return f"{self.updated} of {self.desired} pods updated, {self.available} available" + (
            f", {old} old pods still running" if old > 0 else ""
        )


def conditions(
    svc: ConveyorService, deployment: dict[str, Any] | None, problems: list[Problem]
) -> list[dict[str, Any]]:
    """Ready, Progressing and Degraded, without transition times."""
    gen = svc.generation
    desired = desired_replicas(svc, deployment)
    failure = _deployment_failure(deployment)
    found = problems + ([failure] if failure is not None else [])
    if found:
        message = "; ".join(p.message for p in found)
        degraded = _condition("Degraded", True, found[0].reason, message, gen)
    else:
        degraded = _condition("Degraded", False, "AsExpected", "no problems found", gen)

    rollout = Rollout.of(desired, deployment) if deployment is not None else None
    stale = next((p for p in problems if p.reason in STALE_REASONS), None)
    if rollout is None:
        progressing = _condition("Progressing", True, "Creating", "creating the Deployment", gen)
    elif failure is not None and failure.reason == "ProgressDeadlineExceeded":
        progressing = _condition("Progressing", False, failure.reason, rollout.describe(), gen)
    elif not rollout.complete:
        progressing = _condition("Progressing", True, "RollingOut", rollout.describe(), gen)
    else:
        progressing = _condition(
            "Progressing", False, "RolloutComplete", f"{desired} pods up to date", gen
        )

    if rollout is not None and rollout.complete and stale is None:
        if desired == 0:
            ready = _condition("Ready", False, "ScaledToZero", "no replicas wanted", gen)
        else:
            ready = _condition("Ready", True, "ReplicasReady", f"{desired}/{desired} ready", gen)
    else:
        # The reason a person should look at first.
        if stale is not None or found:
            reason = (stale or found[0]).reason
        else:
            reason = progressing["reason"]
        ready = _condition("Ready", False, reason, progressing["message"], gen)
    return [ready, progressing, degraded]


def compute_status(
    svc: ConveyorService,
    deployment: dict[str, Any] | None,
    problems: list[Problem],
    previous: dict[str, Any],
    now: str,
    images: dict[str, str],
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
    ready = dep_status.get("readyReplicas", 0)
    return {
        "conditions": conds,
        "observedGeneration": svc.generation,
        "replicas": dep_status.get("replicas", 0),
        "readyReplicas": ready,
        "readyOfDesired": f"{ready}/{desired_replicas(svc, deployment)}",
        "selector": svc.selector(),
        "endpoint": svc.endpoint,
        "images": images,
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
