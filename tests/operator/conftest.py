"""Operator test setup: the opt-in real-cluster switch (--kubeconfig) and the emulated cluster."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import itertools
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kmock
import kubernetes
import pytest

# scripts/pod_security.py: the Pod Security check `make chart` runs too.
_SCRIPTS = str(Path(__file__).resolve().parents[2] / "scripts")
if _SCRIPTS not in sys.path:
    sys.path.insert(0, _SCRIPTS)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--kubeconfig",
        default=None,
        help="run the `cluster` tests against this cluster (kind, k3d...); skipped without it",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The option exists only when this conftest loads early (pytest tests/operator ...).
    if config.getoption("--kubeconfig", default=None):
        return
    skip = pytest.mark.skip(reason="needs a real cluster: pass --kubeconfig PATH")
    for item in items:
        if "cluster" in item.keywords:
            item.add_marker(skip)


# ---- the operator under kopf against the kmock Kubernetes emulator --------------------------


class Emulator(kmock.KubernetesEmulator):
    """kmock's emulator plus what kopf and the operator rely on and kmock 0.8 leaves out.

    The API server gives every object a uid, a resourceVersion (bumped on each write), a
    creationTimestamp and a generation (bumped when the spec changes), and names objects
    created with `generateName`. kopf's finalizer patch tests resourceVersion, status reports
    observedGeneration and owner references carry the uid, so the emulator fills them in.
    """

    async def _handle(self, request: Any) -> Any:
        data = request.data
        if request.resource is not None and isinstance(data, dict):
            meta = data.setdefault("metadata", {})
            if request.action == kmock.action.CREATE:
                if "name" not in meta and "generateName" in meta:
                    meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("creationTimestamp", _now())
                meta["generation"] = 1
                meta["resourceVersion"] = str(next(_VERSIONS))
            elif request.action == kmock.action.UPDATE and request.name:
                meta["resourceVersion"] = str(next(_VERSIONS))
                if "spec" in data and request.subresource is None:
                    key = (request.resource, request.namespace, request.name)
                    current = self._objects[key] if key in self._objects else None
                    if current is not None and not current.deleted:
                        before = current.get("metadata", {}).get("generation", 1)
                        meta["generation"] = before + 1
        return await super()._handle(request)


_VERSIONS = itertools.count(1000)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Cluster:
    """The emulated API server, spoken to over HTTP as the operator does."""

    emulator: Emulator
    url: str

    async def call(self, method: str, path: str, body: Any = None, ctype: str | None = None) -> Any:
        headers = {"Content-Type": ctype} if ctype else {}
        async with self.emulator.request(method, path, json=body, headers=headers) as resp:
            payload = await resp.json(content_type=None)
            return resp.status, payload

    def take_requests(self) -> list[Any]:
        """The requests served so far, which the emulator then forgets: kmock matches every new
        request against its whole history, so a long test that keeps it slows quadratically."""
        taken = list(self.emulator)
        del self.emulator._requests[:]
        return taken

    async def get(self, path: str) -> dict[str, Any] | None:
        status, payload = await self.call("GET", path)
        return payload if status == 200 else None

    async def eventually(
        self, path: str, check: Callable[[dict[str, Any] | None], bool], within: float = 15.0
    ) -> dict[str, Any] | None:
        """Poll `path` until `check(object or None)` holds; fail with the last object seen."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            obj = await self.get(path)
            if check(obj):
                return obj
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out waiting on {path}; last seen: {obj}")
            await asyncio.sleep(0.1)


def _declare_resources(emulator: Emulator) -> None:
    emulator.resources.load_bundled()
    emulator.resources["conveyor.dev/v1alpha1/conveyorservices"] = kmock.ResourceInfo(
        kind="ConveyorService",
        singular="conveyorservice",
        namespaced=True,
        verbs={"create", "delete", "get", "list", "patch", "update", "watch"},
        shortnames={"cvs"},
        subresources={"status", "scale"},
    )
    # kopf's peering objects, as the chart's crds/ declare them.
    emulator.resources["kopf.dev/v1/clusterkopfpeerings"] = kmock.ResourceInfo(
        kind="ClusterKopfPeering",
        singular="clusterkopfpeering",
        namespaced=False,
        verbs={"create", "delete", "get", "list", "patch", "update", "watch"},
    )
    # As if the Prometheus Operator were installed.
    emulator.resources["monitoring.coreos.com/v1/servicemonitors"] = kmock.ResourceInfo(
        kind="ServiceMonitor",
        singular="servicemonitor",
        namespaced=True,
        verbs={"create", "delete", "get", "list", "patch", "update", "watch"},
    )
    # As if the Inference Extension, the Gateway API and KEDA were installed (issue 19).
    for path, kind in [
        ("inference.networking.k8s.io/v1/inferencepools", "InferencePool"),
        ("gateway.networking.k8s.io/v1/httproutes", "HTTPRoute"),
        ("keda.sh/v1alpha1/scaledobjects", "ScaledObject"),
    ]:
        emulator.resources[path] = kmock.ResourceInfo(
            kind=kind,
            singular=kind.lower(),
            namespaced=True,
            verbs={"create", "delete", "get", "list", "patch", "update", "watch"},
        )


@pytest.fixture()
async def cluster() -> AsyncIterator[Cluster]:
    async with Emulator() as emulator, kmock.Server(emulator) as server:
        _declare_resources(emulator)
        yield Cluster(emulator, str(server.url).rstrip("/"))


def kube_for(cluster: Cluster, token: str = "operator") -> Any:
    """The operator's API client for `cluster`, sending `token` so a test can tell who called."""
    from conveyor.operator.kube import Kube

    configuration = kubernetes.client.Configuration()
    configuration.host = cluster.url
    configuration.api_key = {"authorization": f"Bearer {token}"}
    return Kube(configuration)


@contextlib.asynccontextmanager
async def running_operator(
    cluster: Cluster, *args: str, token: str = "operator"
) -> AsyncIterator[Any]:
    """The real operator (its kopf registry, handlers and API client) running against `cluster`."""
    from kopf.testing import KopfRunner

    from conveyor.operator.handlers import build_registry

    registry = build_registry(lambda: kube_for(cluster, token))
    runner = KopfRunner(["run", "-A", *(args or ("--standalone",))], registry=registry, timeout=30)
    # kmock serves on this test's event loop and kopf runs in a thread: never block the loop.
    await asyncio.to_thread(runner.__enter__)
    try:
        yield runner
    finally:
        await asyncio.to_thread(runner.__exit__, None, None, None)
    assert runner.exit_code == 0, runner.output


@pytest.fixture()
async def operator(cluster: Cluster) -> AsyncIterator[Cluster]:
    async with running_operator(cluster):
        await until_watching(cluster.emulator)
        yield cluster


async def until_watching(emulator: Emulator, within: float = 10.0) -> None:
    """Wait until kopf watches the ConveyorServices and the Deployments."""
    wanted = {"conveyorservices", "deployments"}
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        watched = {
            r.resource.plural
            for r in list(emulator)
            if r.resource is not None and r.action == kmock.action.WATCH
        }
        if wanted <= watched:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("kopf did not start watching in time")
