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
from conftest import Cluster, running_operator, until_watching

NS = "serving"
CVS = f"/apis/conveyor.dev/v1alpha1/namespaces/{NS}/conveyorservices"
DEPLOYMENT = f"/apis/apps/v1/namespaces/{NS}/deployments/demo"
SERVICE = f"/api/v1/namespaces/{NS}/services/demo"
CONFIG_MAP = f"/api/v1/namespaces/{NS}/configmaps/demo-tools"
PDB = f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/demo"
HPA = f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/demo"
SERVICE_MONITOR = f"/apis/monitoring.coreos.com/v1/namespaces/{NS}/servicemonitors/demo"
NETWORK_POLICY = f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies/demo"
PODS = f"/api/v1/namespaces/{NS}/pods"
EVENTS = f"/api/v1/namespaces/{NS}/events"
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
    for path in (DEPLOYMENT, SERVICE, CONFIG_MAP, NETWORK_POLICY):
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
    # The operator's default images (for a CPU-only spec, the CPU runtime), reported.
    assert cvs["status"]["images"]["runtime"].endswith("-cpu")
    assert "conveyor-tools" in cvs["status"]["images"]["tools"]


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

    add = {"spec": {"replicas": None, "autoscaling": {"minReplicas": 1, "maxReplicas": 3}}}
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


def runtime_pod(name: str, **status: Any) -> dict[str, Any]:
    """A pod of the service as the kubelet reports it (no kubelet runs here)."""
    labels = {
        "app.kubernetes.io/name": "conveyor",
        "app.kubernetes.io/instance": "demo",
        "app.kubernetes.io/managed-by": "conveyor-operator",
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": {"containers": [{"name": "runtime", "image": "x"}]},
        "status": status,
    }


async def test_missing_secret_shown_by_a_pod_makes_it_degraded_with_an_event(
    operator: Cluster,
) -> None:
    spec = {
        **TINY,
        "model": {
            "name": "Qwen/Qwen2.5-7B-Instruct",
            "source": {"huggingFace": {"tokenSecretRef": {"name": "hf-token"}}},
        },
    }
    await create(operator, spec)
    # Level-based: the children exist, so the pods start once the Secret does.
    assert await operator.eventually(DEPLOYMENT, lambda o: o is not None)
    waiting = {
        "name": "runtime",
        "ready": False,
        "state": {
            "waiting": {
                "reason": "CreateContainerConfigError",
                "message": 'secret "hf-token" not found',
            }
        },
    }
    await operator.call("POST", PODS, runtime_pod("demo-abc", containerStatuses=[waiting]))
    cvs = await operator.eventually(
        f"{CVS}/demo", lambda o: condition(o, "Degraded").get("status") == "True"
    )
    degraded = condition(cvs, "Degraded")
    assert degraded["reason"] == "SecretNotFound"
    assert 'secret "hf-token" not found' in degraded["message"]
    assert "kubectl -n serving create secret generic hf-token" in degraded["message"]

    def has_event(events: dict[str, Any] | None) -> bool:
        return any(
            e.get("reason") == "SecretNotFound" and e.get("type") == "Warning"
            for e in (events or {}).get("items", [])
        )

    await operator.eventually(EVENTS, has_event)


async def test_tools_that_cannot_be_isolated_make_it_degraded(operator: Cluster) -> None:
    """The sidecar's readiness probe fails with its reason; the kubelet's Unhealthy event and the
    pod's status are all the operator reads."""
    await create(operator, TINY)
    await operator.eventually(DEPLOYMENT, lambda o: o is not None)
    reason = '503 {"unavailable": {"python": "cannot create a network namespace"}}'
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "demo-abc.1", "namespace": NS},
        "involvedObject": {
            "kind": "Pod",
            "name": "demo-abc",
            "namespace": NS,
            "fieldPath": "spec.initContainers{tools}",
        },
        "reason": "Unhealthy",
        "type": "Warning",
        "message": f"Readiness probe failed: {reason}",
        "lastTimestamp": "2026-01-01T00:00:00Z",
    }
    await operator.call("POST", EVENTS, event)
    tools = {"name": "tools", "started": True, "ready": False, "state": {"running": {}}}
    runtime = {"name": "runtime", "started": True, "ready": False, "state": {"running": {}}}
    pod = runtime_pod("demo-abc", initContainerStatuses=[tools], containerStatuses=[runtime])
    await operator.call("POST", PODS, pod)
    cvs = await operator.eventually(
        f"{CVS}/demo", lambda o: condition(o, "Degraded").get("reason") == "ToolsUnavailable"
    )
    message = condition(cvs, "Degraded")["message"]
    assert "cannot create a network namespace" in message
    assert "runtimeClassName" in message and "seccompProfile" in message
    assert condition(cvs, "Ready")["status"] == "False"


async def test_no_finalizer_is_left_to_block_an_uninstall(operator: Cluster) -> None:
    # One object as an earlier operator version left it, with its finalizer.
    old = service(TINY)
    old["metadata"] = {"name": "old", "namespace": NS, "finalizers": ["conveyor.dev/finalizer"]}
    await operator.call("POST", CVS, old)
    await create(operator, TINY)
    await operator.eventually(DEPLOYMENT, lambda o: o is not None)
    await operator.eventually(
        f"{CVS}/old", lambda o: o is not None and not o["metadata"].get("finalizers")
    )
    cvs = await operator.eventually(f"{CVS}/demo", lambda o: bool(o and o.get("status")))
    assert not cvs["metadata"].get("finalizers")
    # So deleting a ConveyorService (or the CRD, with `kubectl delete -f install.yaml`) finishes
    # even with no operator left to remove a finalizer.
    status, _ = await operator.call("DELETE", f"{CVS}/demo")
    assert status == 200
    await operator.eventually(f"{CVS}/demo", lambda o: o is None)


async def test_a_standby_replica_does_nothing_while_the_active_one_runs(cluster: Cluster) -> None:
    """Two operators peering as the chart runs them: only the one with the higher priority acts,
    and the other takes over when it goes."""
    peering = {
        "apiVersion": "kopf.dev/v1",
        "kind": "ClusterKopfPeering",
        "metadata": {"name": "conveyor-operator"},
    }
    status, _ = await cluster.call("POST", "/apis/kopf.dev/v1/clusterkopfpeerings", peering)
    assert status in (200, 201)
    args = ("--peering", "conveyor-operator", "--priority")
    async with running_operator(cluster, *args, "100", token="standby"):
        async with running_operator(cluster, *args, "200", token="active"):
            await until_watching(cluster.emulator)
            await cluster.eventually(
                "/apis/kopf.dev/v1/clusterkopfpeerings/conveyor-operator",
                lambda o: len((o or {}).get("status") or {}) == 2,
            )
            cluster.take_requests()
            await create(cluster, TINY)
            await cluster.eventually(DEPLOYMENT, lambda o: o is not None)
            await cluster.eventually(f"{CVS}/demo", lambda o: bool(o and o.get("status")))
            await asyncio.sleep(1)  # room for a standby that wrongly acts to show itself
            by = writers(cluster.take_requests())
            assert by.get("active"), "the active operator wrote nothing"
            assert by.get("standby", set()) == set(), "the standby wrote"
        # The active one has gone: the standby resumes and follows a change.
        await cluster.call("PATCH", f"{CVS}/demo", {"spec": {"replicas": 2}}, MERGE)
        await cluster.eventually(
            DEPLOYMENT, lambda o: o is not None and o["spec"]["replicas"] == 2, within=30
        )
        assert "deployments" in writers(cluster.take_requests()).get("standby", set())


def writers(requests: list[Any]) -> dict[str, set[str]]:
    """Which resources each operator (told apart by its token) wrote, peering aside."""
    found: dict[str, set[str]] = {}
    for r in requests:
        if r.method.name in ("GET",) or r.resource is None:
            continue
        if r.resource.plural == "clusterkopfpeerings":
            continue  # keep-alives: every replica writes its own record
        token = (r.headers.get("Authorization") or "").removeprefix("Bearer ")
        found.setdefault(token, set()).add(r.resource.plural)
    return found


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
