"""What a service's pods tell through the API: crash loops, images that cannot be pulled, missing
Secrets, pods nothing can schedule, and containers that are not ready with the reason their
readiness probe printed.

Pure: the pods and their events go in, problems with a message that says what to change come out.
The operator reads only what the API shows (pod status and `Unhealthy` events); it never execs
into a pod.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

IMAGE_HINT = (
    "build and push the images to your registry (`make images`, docs/deploy.md) and point the "
    "chart's images.registry at it, or set spec.engine.image / spec.tools.image; a private "
    "registry also needs spec.podTemplate.imagePullSecrets"
)
SANDBOX_HINT = (
    "the tool sidecar could not set up the isolation a tool asks for, so it does not serve that "
    "tool. Let the tools container create unprivileged user namespaces (a Localhost seccomp "
    "profile in spec.tools.sandbox.seccompProfile, on Ubuntu 24.04 nodes an AppArmor profile "
    "with `userns,` in spec.tools.sandbox.appArmorProfile; spec.podTemplate.hostUsers: false "
    "with spec.tools.sandbox.procMount: Unmasked for a private /proc), or run the pods under "
    "gVisor or Kata with spec.podTemplate.runtimeClassName; see docs/deploy.md, 'Tool sandbox "
    "in the pod'"
)
_PULL_FAILURES = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
_READINESS_FAILED = "Readiness probe failed:"


@dataclass(frozen=True)
class PodProblem:
    """One kind of trouble, seen in one or more pods."""

    reason: str
    message: str


def _statuses(pod: dict[str, Any]) -> Iterable[dict[str, Any]]:
    status = pod.get("status") or {}
    # The tools sidecar is an init container: its status is among the init containers'.
    yield from status.get("initContainerStatuses") or []
    yield from status.get("containerStatuses") or []


def _readiness_failures(events: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """The newest readiness-probe output per (pod, container)."""

    def when(event: dict[str, Any]) -> str:
        meta = event.get("metadata") or {}
        return str(
            event.get("lastTimestamp")
            or event.get("eventTime")
            or meta.get("creationTimestamp")
            or ""
        )

    found: dict[tuple[str, str], str] = {}
    for event in sorted(events, key=when):
        message = str(event.get("message") or "")
        obj = event.get("involvedObject") or {}
        if event.get("reason") != "Unhealthy" or not message.startswith(_READINESS_FAILED):
            continue
        path = str(obj.get("fieldPath") or "")
        container = path[path.find("{") + 1 : path.rfind("}")] if "{" in path else ""
        found[str(obj.get("name")), container] = message[len(_READINESS_FAILED) :].strip()
    return found


def _container_problem(
    pod: str, status: dict[str, Any], probe_output: str | None
) -> PodProblem | None:
    name = status.get("name", "?")
    waiting = (status.get("state") or {}).get("waiting") or {}
    reason = waiting.get("reason", "")
    if reason == "CrashLoopBackOff":
        last = (status.get("lastState") or {}).get("terminated") or {}
        said = str(last.get("message") or "").strip()
        return PodProblem(
            "CrashLoopBackOff",
            f"container {name} of pod {pod} is crash-looping ({status.get('restartCount', 0)} "
            f"restarts); it last exited with code {last.get('exitCode', '?')} "
            f"({last.get('reason', 'unknown')})" + (f": {said}" if said else ""),
        )
    if reason in _PULL_FAILURES:
        return PodProblem(
            "ImagePullFailed",
            f"container {name} of pod {pod} cannot pull {status.get('image', 'its image')}: "
            f"{waiting.get('message', reason)}; {IMAGE_HINT}",
        )
    if reason == "CreateContainerConfigError":
        return PodProblem(
            "ContainerConfigError",
            f"container {name} of pod {pod} cannot start: {waiting.get('message', reason)}",
        )
    if status.get("started") and not status.get("ready") and probe_output is not None:
        if name == "tools":
            return PodProblem(
                "ToolsUnavailable",
                f"the tools container of pod {pod} is not ready ({probe_output}): {SANDBOX_HINT}",
            )
        return PodProblem(
            "ContainerNotReady", f"container {name} of pod {pod} is not ready: {probe_output}"
        )
    return None


def pod_problems(pods: list[dict[str, Any]], events: list[dict[str, Any]]) -> list[PodProblem]:
    """One problem per kind of trouble, with the first pod's details and how many pods show it."""
    probes = _readiness_failures(events)
    seen: dict[str, tuple[PodProblem, int]] = {}

    def note(problem: PodProblem) -> None:
        first, count = seen.get(problem.reason, (problem, 0))
        seen[problem.reason] = (first, count + 1)

    for pod in sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("name"))):
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue  # a pod on its way out says nothing about the current spec
        name = str(meta.get("name"))
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("reason") == "Unschedulable":
                note(
                    PodProblem(
                        "Unschedulable",
                        f"pod {name} cannot be scheduled: {cond.get('message', '')}",
                    )
                )
        for status in _statuses(pod):
            found = _container_problem(name, status, probes.get((name, status.get("name", ""))))
            if found is not None:
                note(found)
    return [
        PodProblem(p.reason, p.message + (f" (and {n - 1} more pods)" if n > 1 else ""))
        for p, n in seen.values()
    ]
