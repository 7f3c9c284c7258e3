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
from conveyor.operator.render import ConveyorService
from conveyor.operator.status import (
    ClusterFacts,
    Problem,
    compute_status,
    find_problems,
    warnings_to_post,
)

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"


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


def test_missing_secret_is_a_problem_with_the_fix_in_its_message() -> None:
    problems = find_problems(svc({"model": HF}), ClusterFacts(missing_secrets=("hf-token",)))
    assert [p.reason for p in problems] == ["SecretNotFound"]
    assert "kubectl -n ns create secret generic hf-token --from-literal=tok=" in problems[0].message
    assert find_problems(svc({"model": HF}), ClusterFacts()) == []


def test_missing_pull_secret_and_claims_are_problems() -> None:
    spec = {"model": HF, "imagePullSecrets": ["regcred"], "modelCache": {"claimName": "w"}}
    facts = ClusterFacts(missing_secrets=("regcred",), missing_claims=("w",))
    reasons = [p.reason for p in find_problems(svc(spec), facts)]
    assert reasons == ["SecretNotFound", "PersistentVolumeClaimNotFound"]


@pytest.mark.parametrize(
    ("gpus", "largest", "problem"),
    [(2, 1, True), (2, 0, True), (2, 8, False), (2, None, False), (0, 0, False)],
)
def test_gpu_count_no_node_can_offer_is_a_problem(
    gpus: int, largest: int | None, problem: bool
) -> None:
    spec = {"model": HF, "resources": {"gpus": gpus}}
    found = find_problems(svc(spec), ClusterFacts(largest_gpu_node=largest))
    assert [p.reason for p in found] == (["InsufficientGPUs"] if problem else [])


def test_no_deployment_yet_is_progressing_not_ready() -> None:
    status = compute_status(svc({"model": HF}), None, [], {}, T0)
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


def test_rolled_out_deployment_is_ready() -> None:
    status = compute_status(svc({"model": HF, "replicas": 2}), deployment(2, 2), [], {}, T0)
    c = conds(status)
    assert c["Ready"]["status"] == "True" and c["Ready"]["reason"] == "ReplicasReady"
    assert c["Progressing"]["status"] == "False"
    assert (status["replicas"], status["readyReplicas"]) == (2, 2)


def test_rollout_in_progress() -> None:
    dep = deployment(1, 2)
    dep["status"]["updatedReplicas"] = 1
    c = conds(compute_status(svc({"model": HF, "replicas": 2}), dep, [], {}, T0))
    assert c["Progressing"]["status"] == "True" and c["Progressing"]["reason"] == "RollingOut"
    assert c["Ready"]["status"] == "False"


def test_stuck_rollout_is_degraded_with_the_deployment_reason() -> None:
    stuck = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
             "message": "ReplicaSet has timed out progressing."}  # fmt: skip
    dep = deployment(0, 1, conditions=[stuck])
    c = conds(compute_status(svc({"model": HF}), dep, [], {}, T0))
    assert c["Degraded"]["status"] == "True"
    assert c["Degraded"]["reason"] == "ProgressDeadlineExceeded"


def test_problems_make_it_degraded_and_join_messages() -> None:
    problems = [Problem("SecretNotFound", "a"), Problem("InsufficientGPUs", "b")]
    c = conds(compute_status(svc({"model": HF}), deployment(1), problems, {}, T0))
    assert c["Degraded"]["status"] == "True" and c["Degraded"]["reason"] == "SecretNotFound"
    assert c["Degraded"]["message"] == "a; b"
    assert c["Ready"]["status"] == "True"  # pods that already run keep serving


def test_scaled_to_zero() -> None:
    c = conds(compute_status(svc({"model": HF, "replicas": 0}), deployment(0, 0), [], {}, T0))
    assert c["Ready"]["reason"] == "ScaledToZero"


def test_transition_time_moves_only_when_the_status_changes() -> None:
    s = svc({"model": HF})
    first = compute_status(s, None, [], {}, T0)
    same = compute_status(s, None, [], first, T1)
    assert same == first  # nothing changed: the handler writes nothing
    ready = compute_status(s, deployment(1), [], first, T1)
    c = conds(ready)
    assert c["Ready"]["lastTransitionTime"] == T1  # False -> True
    assert c["Degraded"]["lastTransitionTime"] == T0  # still False


def test_an_event_only_when_degraded_starts_or_changes() -> None:
    s = svc({"model": HF})
    healthy = compute_status(s, None, [], {}, T0)
    broken = compute_status(s, None, [Problem("SecretNotFound", "m")], healthy, T1)
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
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    kinds = [d["kind"] for d in yaml.safe_load_all(out)]
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "Service",
        "ServiceMonitor",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    ]
