"""The operator process (kopf, the real handlers and API client) against the kmock emulator.

kmock stands in for the API server, which cannot run here; it stores objects and streams watch
events but runs no controllers, so a test plays the Deployment controller by writing the
Deployment's status itself, and plays the garbage collector nowhere (no test needs it).
"""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from conftest import Cluster

NS = "serving"
CVS = f"/apis/conveyor.dev/v1alpha1/namespaces/{NS}/conveyorservices"
DEPLOYMENT = f"/apis/apps/v1/namespaces/{NS}/deployments/demo"
SERVICE = f"/api/v1/namespaces/{NS}/services/demo"
CONFIG_MAP = f"/api/v1/namespaces/{NS}/configmaps/demo-tools"
PDB = f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/demo"
HPA = f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/demo"
SERVICE_MONITOR = f"/apis/monitoring.coreos.com/v1/namespaces/{NS}/servicemonitors/demo"
MERGE = "application/merge-patch+json"


def service(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "conveyor.dev/v1alpha1",
        "kind": "ConveyorService",
        "metadata": {"name": "demo", "namespace": NS},
        "spec": spec,
    }


TINY = {"model": {"name": "/opt/conveyor/models/tiny"}, "tools": {"enabled": ["python"]}}


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    for cond in ((obj or {}).get("status") or {}).get("conditions", []):
        if cond["type"] == kind:
            return cond  # type: ignore[no-any-return]
    return {}


async def create(cluster: Cluster, spec: dict[str, Any]) -> dict[str, Any]:
    status, created = await cluster.call("POST", CVS, service(spec))
    assert status in (200, 201), created
    return created  # type: ignore[no-any-return]


async def test_create_makes_owned_children(operator: Cluster) -> None:
    created = await create(operator, TINY)
    uid = created["metadata"]["uid"]
    for path in (DEPLOYMENT, SERVICE, CONFIG_MAP):
        child = await operator.eventually(path, lambda o: o is not None)
        assert child is not None
        (owner,) = child["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == ("ConveyorService", "demo", uid)
        assert owner["controller"] is True
    # One replica: no disruption budget, no autoscaler.
    assert await operator.get(PDB) is None and await operator.get(HPA) is None
    cvs = await operator.eventually(
        f"{CVS}/demo", lambda o: condition(o, "Progressing").get("status") == "True"
    )
    assert cvs is not None
    assert cvs["status"]["selector"] == (
        "app.kubernetes.io/name=conveyor,app.kubernetes.io/instance=demo"
    )
    assert cvs["status"]["endpoint"] == f"http://demo.{NS}.svc:8000/v1"
    assert condition(cvs, "Ready")["status"] == "False"


async def test_ready_deployment_makes_the_service_ready(operator: Cluster) -> None:
    await create(operator, TINY)
    deployment = await operator.eventually(DEPLOYMENT, lambda o: o is not None)
    assert deployment is not None
    # Play the Deployment controller: one pod rolled out and ready.
    generation = deployment["metadata"]["generation"]
    rolled_out = {
        "status": {
            "observedGeneration": generation,
            "replicas": 1,
            "updatedReplicas": 1,
            "readyReplicas": 1,
            "availableReplicas": 1,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
            ],
        }
    }
    status, _ = await operator.call("PATCH", f"{DEPLOYMENT}/status", rolled_out, MERGE)
    assert status == 200
    cvs = await operator.eventually(
        f"{CVS}/demo", lambda o: condition(o, "Ready").get("status") == "True"
    )
    assert cvs is not None
    assert cvs["status"]["readyReplicas"] == 1 and cvs["status"]["replicas"] == 1
    assert condition(cvs, "Progressing")["status"] == "False"
    assert condition(cvs, "Degraded")["status"] == "False"
    ready = condition(cvs, "Ready")
    assert ready["reason"] == "ReplicasReady"
    assert ready["observedGeneration"] == cvs["metadata"]["generation"]
    assert ready["lastTransitionTime"]


async def test_spec_changes_reach_the_children(operator: Cluster) -> None:
    await create(operator, TINY)
    await operator.eventually(DEPLOYMENT, lambda o: o is not None)

    change = {"spec": {"replicas": 2, "engine": {"image": "registry.local/runtime:2"}}}
    status, _ = await operator.call("PATCH", f"{CVS}/demo", change, MERGE)
    assert status == 200

    def follows(o: dict[str, Any] | None) -> bool:
        if o is None:
            return False
        containers = o["spec"]["template"]["spec"]["containers"]
        return o["spec"]["replicas"] == 2 and containers[0]["image"] == "registry.local/runtime:2"

    await operator.eventually(DEPLOYMENT, follows)
    await operator.eventually(PDB, lambda o: o is not None)  # two replicas: a budget appears

    # An option taken out of the spec takes its child with it.
    status, _ = await operator.call("PATCH", f"{CVS}/demo", {"spec": {"replicas": 1}}, MERGE)
    assert status == 200
    await operator.eventually(PDB, lambda o: o is None)

    add = {"spec": {"autoscaling": {"minReplicas": 1, "maxReplicas": 3}}}
    await operator.call("PATCH", f"{CVS}/demo", add, MERGE)
    hpa = await operator.eventually(HPA, lambda o: o is not None)
    assert hpa is not None and hpa["spec"]["maxReplicas"] == 3
    await operator.call("PATCH", f"{CVS}/demo", {"spec": {"autoscaling": None}}, MERGE)
    await operator.eventually(HPA, lambda o: o is None)

    monitor = {"spec": {"metrics": {"serviceMonitor": True, "interval": "10s"}}}
    await operator.call("PATCH", f"{CVS}/demo", monitor, MERGE)
    sm = await operator.eventually(SERVICE_MONITOR, lambda o: o is not None)
    assert sm is not None and sm["spec"]["endpoints"][0]["interval"] == "10s"
    off = {"spec": {"metrics": {"serviceMonitor": False}}}
    await operator.call("PATCH", f"{CVS}/demo", off, MERGE)
    await operator.eventually(SERVICE_MONITOR, lambda o: o is None)


async def test_children_changed_or_deleted_by_hand_are_put_back(operator: Cluster) -> None:
    await create(operator, TINY)
    config_map = await operator.eventually(CONFIG_MAP, lambda o: o is not None)
    assert config_map is not None
    await operator.eventually(SERVICE, lambda o: o is not None)

    status, _ = await operator.call("DELETE", CONFIG_MAP)
    assert status == 200
    back = await operator.eventually(CONFIG_MAP, lambda o: o is not None)
    assert back is not None and back["data"] == config_map["data"]

    await operator.eventually(DEPLOYMENT, lambda o: o is not None)
    status, _ = await operator.call("PATCH", DEPLOYMENT, {"spec": {"replicas": 7}}, MERGE)
    assert status == 200
    await operator.eventually(DEPLOYMENT, lambda o: o is not None and o["spec"]["replicas"] == 1)


async def test_missing_secret_makes_it_degraded_with_an_event(operator: Cluster) -> None:
    spec = {
        **TINY,
        "model": {
            "name": "Qwen/Qwen2.5-7B-Instruct",
            "source": {"huggingFace": {"tokenSecretRef": {"name": "hf-token"}}},
        },
    }
    await create(operator, spec)
    cvs = await operator.eventually(
        f"{CVS}/demo", lambda o: condition(o, "Degraded").get("status") == "True"
    )
    degraded = condition(cvs, "Degraded")
    assert degraded["reason"] == "SecretNotFound"
    assert f"Secret {NS}/hf-token" in degraded["message"]
    # Still level-based: the children exist, so the pods start once the Secret does.
    assert await operator.eventually(DEPLOYMENT, lambda o: o is not None)

    def has_event(events: dict[str, Any] | None) -> bool:
        return any(
            e.get("reason") == "SecretNotFound" and e.get("type") == "Warning"
            for e in (events or {}).get("items", [])
        )

    await operator.eventually(f"/api/v1/namespaces/{NS}/events", has_event)


async def test_the_command_runs_the_operator_with_its_liveness_endpoint(
    cluster: Cluster, tmp_path: Path
) -> None:
    """`conveyor-operator run` as its own process, namespaced, with a kubeconfig."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "kmock", "cluster": {"server": cluster.url}}],
                "users": [{"name": "test", "user": {}}],
                "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "test"}}],
                "current-context": "kmock",
            }
        )
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "conveyor.operator.cli", "run",
        "--namespace", NS, "--kubeconfig", str(kubeconfig), "--liveness-port", str(port),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                assert process.returncode is None, "the operator exited"
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("no liveness endpoint")
        await create(cluster, TINY)
        await cluster.eventually(DEPLOYMENT, lambda o: o is not None, within=30)
    finally:
        process.terminate()
        _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()[-2000:]
