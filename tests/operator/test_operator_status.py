"""Status, problems and drift: the pure decisions the handlers act on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.operator._schema import SpecError
from conveyor.operator.drift import drifted
from conveyor.operator.pods import pod_problems
from conveyor.operator.render import ConveyorService
from conveyor.operator.status import (
    ClusterFacts,
    Problem,
    compute_status,
    find_problems,
    warnings_to_post,
)

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"
IMAGES = {"runtime": "r", "tools": "t"}


def svc(spec: dict[str, Any], generation: int = 2) -> ConveyorService:
    return ConveyorService.from_object(
        {
            "metadata": {"name": "demo", "namespace": "ns", "uid": "u", "generation": generation},
            "spec": spec,
        }
    )


HF = {
    "name": "Qwen/Qwen2.5-7B-Instruct",
    "source": {"huggingFace": {"tokenSecretRef": {"name": "hf-token", "key": "tok"}}},
}


def deployment(ready: int, replicas: int = 1, generation: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "status": {
            "observedGeneration": generation,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            **extra,
        },
    }


def conds(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def pod(name: str, *statuses: dict[str, Any], **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"app.kubernetes.io/instance": "demo"}},
        "status": {"containerStatuses": list(statuses), **status},
    }


def crash_looping(name: str = "runtime") -> dict[str, Any]:
    return {
        "name": name,
        "ready": False,
        "started": False,
        "restartCount": 5,
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}},
        "lastState": {
            "terminated": {
                "exitCode": 1,
                "reason": "Error",
                "message": "ValueError: model Qwen/Qwen2.5-7B-Instruct needs 15 GiB",
            }
        },
    }


def unhealthy(pod_name: str, container: str, output: str, when: str) -> dict[str, Any]:
    where = (
        "spec.initContainers{tools}" if container == "tools" else f"spec.containers{{{container}}}"
    )
    return {
        "reason": "Unhealthy",
        "message": f"Readiness probe failed: {output}",
        "involvedObject": {"kind": "Pod", "name": pod_name, "fieldPath": where},
        "lastTimestamp": when,
    }


def test_crash_loop_is_a_problem_with_the_last_termination_message() -> None:
    (problem,) = pod_problems([pod("demo-1", crash_looping()), pod("demo-2", crash_looping())], [])
    assert problem.reason == "CrashLoopBackOff"
    assert "container runtime of pod demo-1 is crash-looping (5 restarts)" in problem.message
    assert "exited with code 1 (Error): ValueError: model" in problem.message
    assert problem.message.endswith("(and 1 more pods)")


def test_image_pull_failure_says_how_to_provide_the_images() -> None:
    status = {
        "name": "runtime",
        "image": "localhost/conveyor/conveyor-runtime:0.1.0",
        "state": {"waiting": {"reason": "ImagePullBackOff", "message": "pull access denied"}},
    }
    (problem,) = pod_problems([pod("demo-1", status)], [])
    assert problem.reason == "ImagePullFailed"
    assert "cannot pull localhost/conveyor/conveyor-runtime:0.1.0: pull access denied" in (
        problem.message
    )
    assert "make images" in problem.message and "images.registry" in problem.message


def test_missing_token_secret_comes_from_the_pod_with_the_fix() -> None:
    status = {
        "name": "runtime",
        "state": {
            "waiting": {
                "reason": "CreateContainerConfigError",
                "message": 'secret "hf-token" not found',
            }
        },
    }
    facts = ClusterFacts(pod_problems=tuple(pod_problems([pod("demo-1", status)], [])))
    (problem,) = find_problems(svc({"model": HF}), facts)
    assert problem.reason == "SecretNotFound"
    assert 'secret "hf-token" not found' in problem.message
    assert "kubectl -n ns create secret generic hf-token --from-literal=tok=" in problem.message


def test_unschedulable_pod_and_missing_claim_are_problems() -> None:
    scheduled = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
    }
    facts = ClusterFacts(
        missing_claims=("w",),
        pod_problems=tuple(pod_problems([pod("demo-1", conditions=[scheduled])], [])),
    )
    found = find_problems(svc({"model": HF, "modelCache": {"claimName": "w"}}), facts)
    assert [p.reason for p in found] == ["PersistentVolumeClaimNotFound", "Unschedulable"]
    assert "3 Insufficient nvidia.com/gpu" in found[1].message


def test_tools_not_ready_names_the_reason_and_what_to_change() -> None:
    tools = {"name": "tools", "started": True, "ready": False, "state": {"running": {}}}
    runtime = {"name": "runtime", "started": True, "ready": True, "state": {"running": {}}}
    p = pod("demo-1", runtime, initContainerStatuses=[tools])
    events = [
        unhealthy("demo-1", "tools", "HTTP Error 503: old", T0),
        unhealthy("demo-1", "tools", "HTTP Error 503: python: cannot create a user namespace", T1),
        unhealthy("demo-9", "tools", "another pod", T1),
    ]
    (problem,) = pod_problems([p], events)
    assert problem.reason == "ToolsUnavailable"
    assert "python: cannot create a user namespace" in problem.message  # the newest output
    assert "seccompProfile" in problem.message and "runtimeClassName" in problem.message
    # Ready again: no problem, whatever old events say.
    tools_ready = {**tools, "ready": True}
    assert pod_problems([pod("demo-1", runtime, initContainerStatuses=[tools_ready])], events) == []


def test_runtime_not_ready_carries_its_probe_output() -> None:
    runtime = {"name": "runtime", "started": True, "ready": False, "state": {"running": {}}}
    events = [unhealthy("demo-1", "runtime", "HTTP Error 503: tools unavailable: python", T0)]
    (problem,) = pod_problems([pod("demo-1", runtime)], events)
    assert problem.reason == "ContainerNotReady"
    assert "tools unavailable: python" in problem.message
    # A pod still loading its model (startup probe not passed yet) is not a problem.
    loading = {**runtime, "started": False}
    assert pod_problems([pod("demo-1", loading)], events) == []


def test_no_deployment_yet_is_progressing_not_ready() -> None:
    status = compute_status(svc({"model": HF}), None, [], {}, T0, IMAGES)
    c = conds(status)
    assert (c["Ready"]["status"], c["Progressing"]["status"], c["Degraded"]["status"]) == (
        "False",
        "True",
        "False",
    )
    assert all(x["observedGeneration"] == 2 and x["lastTransitionTime"] == T0 for x in c.values())
    assert status["observedGeneration"] == 2
    assert status["selector"] == "app.kubernetes.io/name=conveyor,app.kubernetes.io/instance=demo"
    assert status["endpoint"] == "http://demo.ns.svc:8000/v1"
    assert status["images"] == IMAGES


def test_rolled_out_deployment_is_ready() -> None:
    status = compute_status(svc({"model": HF, "replicas": 2}), deployment(2, 2), [], {}, T0, IMAGES)
    c = conds(status)
    assert c["Ready"]["status"] == "True" and c["Ready"]["reason"] == "ReplicasReady"
    assert c["Progressing"]["status"] == "False"
    assert (status["replicas"], status["readyReplicas"], status["readyOfDesired"]) == (2, 2, "2/2")


@pytest.mark.parametrize(
    ("case", "change"),
    [
        # Old pods still serve the old model next to the new ones: all ready, yet not done.
        ("old pods left", {"replicas": 3, "updatedReplicas": 2, "availableReplicas": 3}),
        ("new pod not available", {"updatedReplicas": 2, "availableReplicas": 1}),
        ("controller behind", {"observedGeneration": 4}),
        ("too few updated", {"replicas": 2, "updatedReplicas": 1}),
    ],
)
def test_not_ready_while_a_rollout_is_under_way(case: str, change: dict[str, Any]) -> None:
    dep = deployment(2, 2, generation=5)
    dep["status"].update(readyReplicas=2, **change)
    status = compute_status(svc({"model": HF, "replicas": 2}), dep, [], {}, T0, IMAGES)
    c = conds(status)
    assert c["Ready"]["status"] == "False", case
    assert c["Ready"]["reason"] == "RollingOut"
    assert c["Progressing"]["status"] == "True" and c["Progressing"]["reason"] == "RollingOut"
    assert c["Ready"]["message"] == c["Progressing"]["message"]


def test_the_rollout_message_says_what_is_left() -> None:
    dep = deployment(3, 3)
    dep["status"].update(updatedReplicas=2, availableReplicas=3)
    c = conds(compute_status(svc({"model": HF, "replicas": 2}), dep, [], {}, T0, IMAGES))
    assert (
        c["Progressing"]["message"] == "2 of 2 pods updated, 3 available, 1 old pods still running"
    )


def test_with_an_autoscaler_the_desired_count_is_the_deployments() -> None:
    spec = {"model": HF, "autoscaling": {"minReplicas": 1, "maxReplicas": 5}}
    dep = deployment(3, 3)
    dep["spec"] = {"replicas": 3}
    status = compute_status(svc(spec), dep, [], {}, T0, IMAGES)
    assert conds(status)["Ready"]["status"] == "True" and status["readyOfDesired"] == "3/3"


def test_stuck_rollout_is_degraded_with_the_deployment_reason() -> None:
    stuck = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
             "message": "ReplicaSet has timed out progressing."}  # fmt: skip
    dep = deployment(0, 1, conditions=[stuck])
    c = conds(compute_status(svc({"model": HF}), dep, [], {}, T0, IMAGES))
    assert c["Degraded"]["status"] == "True"
    assert c["Degraded"]["reason"] == "ProgressDeadlineExceeded"
    assert c["Degraded"]["message"] == "ReplicaSet has timed out progressing."
    assert c["Progressing"]["status"] == "False"
    assert c["Progressing"]["reason"] == "ProgressDeadlineExceeded"
    assert c["Ready"]["reason"] == "ProgressDeadlineExceeded"


def test_a_failed_apply_is_never_ready() -> None:
    # The Deployment in the cluster may hold the previous spec.
    problems = [Problem("ApplyFailed", "cannot apply Deployment demo: 422 invalid")]
    c = conds(compute_status(svc({"model": HF}), deployment(1), problems, {}, T0, IMAGES))
    assert c["Ready"]["status"] == "False" and c["Ready"]["reason"] == "ApplyFailed"


def test_problems_make_it_degraded_and_join_messages() -> None:
    problems = [Problem("SecretNotFound", "a"), Problem("Unschedulable", "b")]
    c = conds(compute_status(svc({"model": HF}), deployment(1), problems, {}, T0, IMAGES))
    assert c["Degraded"]["status"] == "True" and c["Degraded"]["reason"] == "SecretNotFound"
    assert c["Degraded"]["message"] == "a; b"
    assert c["Ready"]["status"] == "True"  # pods that already run keep serving


def test_scaled_to_zero() -> None:
    c = conds(
        compute_status(svc({"model": HF, "replicas": 0}), deployment(0, 0), [], {}, T0, IMAGES)
    )
    assert c["Ready"]["reason"] == "ScaledToZero"


def test_transition_time_moves_only_when_the_status_changes() -> None:
    s = svc({"model": HF})
    first = compute_status(s, None, [], {}, T0, IMAGES)
    same = compute_status(s, None, [], first, T1, IMAGES)
    assert same == first  # nothing changed: the handler writes nothing
    ready = compute_status(s, deployment(1), [], first, T1, IMAGES)
    c = conds(ready)
    assert c["Ready"]["lastTransitionTime"] == T1  # False -> True
    assert c["Degraded"]["lastTransitionTime"] == T0  # still False


def test_an_event_only_when_degraded_starts_or_changes() -> None:
    s = svc({"model": HF})
    healthy = compute_status(s, None, [], {}, T0, IMAGES)
    broken = compute_status(s, None, [Problem("SecretNotFound", "m")], healthy, T1, IMAGES)
    assert warnings_to_post(healthy, broken) == [Problem("SecretNotFound", "m")]
    assert warnings_to_post(broken, broken) == []
    assert warnings_to_post(broken, healthy) == []


def test_spec_the_types_cannot_hold_is_refused() -> None:
    with pytest.raises(SpecError, match="spec.model is required"):
        svc({})
    with pytest.raises(SpecError, match="unknown fields: replica"):
        svc({"model": HF, "replica": 1})


@pytest.mark.parametrize(
    ("desired", "actual", "expected"),
    [
        ({"a": 1}, {"a": 1, "b": 2}, False),  # fields added by the server are not drift
        ({"a": 1}, {"a": 2}, True),
        ({"a": {"b": [1, 2]}}, {"a": {"b": [1, 2]}}, False),
        ({"a": [{"x": 1}]}, {"a": [{"x": 1, "y": 0}]}, False),
        ({"a": [1, 2]}, {"a": [1]}, True),
        ({"a": {"b": 1}}, {}, True),
        ({"a": {}}, {"a": {"z": 1}}, False),
    ],
)
def test_drift(desired: Any, actual: Any, expected: bool) -> None:
    assert drifted(desired, actual) is expected


def test_render_command_prints_the_children() -> None:
    sample = next(
        (Path(__file__).resolve().parents[2] / "manifests" / "samples").glob("*autoscaled.yaml")
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "conveyor.operator.cli",
            "render",
            str(sample),
            "--service-monitors",
            "--runtime-image",
            "r.example/rt:1",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    docs = list(yaml.safe_load_all(out))
    kinds = [d["kind"] for d in docs]
    runtime = docs[1]["spec"]["template"]["spec"]["containers"][0]
    assert runtime["image"] == "r.example/rt:1"  # a GPU sample: the --runtime-image
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "Service",
        "ServiceMonitor",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
    ]
