"""Opt-in tests against a real cluster (kind, k3d...): `pytest tests/operator --kubeconfig PATH`.

They install the CRD (cluster-wide), let the real API server judge the samples and a bad spec
(so the CEL rules run in Kubernetes itself), and run the operator in-process in a throw-away
namespace. No GPU and no image pull is needed: the tests stop at the children and the status.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from conveyor.operator.crd import crd

pytestmark = pytest.mark.cluster

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "manifests" / "samples").glob("*.yaml"))
GROUP, VERSION, PLURAL = "conveyor.dev", "v1alpha1", "conveyorservices"


@pytest.fixture(scope="module")
def kubeconfig(request: pytest.FixtureRequest) -> str:
    return str(request.config.getoption("--kubeconfig"))


@pytest.fixture(scope="module")
def api(kubeconfig: str) -> client.ApiClient:
    return config.new_client_from_config(config_file=kubeconfig)


@pytest.fixture(scope="module")
def namespace(api: client.ApiClient) -> Iterator[str]:
    ext = client.ApiextensionsV1Api(api)
    body = crd()
    try:
        ext.create_custom_resource_definition(body)
    except ApiException as e:
        if e.status != 409:
            raise
        current = ext.read_custom_resource_definition(body["metadata"]["name"])
        body["metadata"]["resourceVersion"] = current.metadata.resource_version
        ext.replace_custom_resource_definition(body["metadata"]["name"], body)
    _wait(lambda: _established(ext, body["metadata"]["name"]), "the CRD to be established")
    core = client.CoreV1Api(api)
    name = f"conveyor-test-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def _established(ext: client.ApiextensionsV1Api, name: str) -> bool:
    conditions = ext.read_custom_resource_definition(name).status.conditions or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


def _wait(check: Callable[[], Any], what: str, within: float = 60.0) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            found = check()
        except ApiException as e:
            if e.status != 404:
                raise
            found = None
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_api_server_admits_the_samples(api: client.ApiClient, namespace: str, path: Path) -> None:
    body = yaml.safe_load(path.read_text())
    objects = client.CustomObjectsApi(api)
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body, dry_run="All")


def test_api_server_refuses_a_bad_spec_with_the_cel_message(
    api: client.ApiClient, namespace: str
) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ConveyorService",
        "metadata": {"name": "bad"},
        "spec": {"model": {"name": "m"}, "autoscaling": {"minReplicas": 5, "maxReplicas": 2}},
    }
    with pytest.raises(ApiException) as caught:
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, body, dry_run="All"
        )
    assert caught.value.status == 422
    assert "autoscaling.minReplicas must not be greater than autoscaling.maxReplicas" in str(
        caught.value.body
    )


def test_operator_creates_children_and_puts_them_back(
    api: client.ApiClient, namespace: str, kubeconfig: str
) -> None:
    from kopf.testing import KopfRunner

    from conveyor.operator.handlers import build_registry
    from conveyor.operator.kube import Kube

    registry = build_registry(lambda: Kube.connect(kubeconfig))
    objects = client.CustomObjectsApi(api)
    core = client.CoreV1Api(api)
    apps = client.AppsV1Api(api)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ConveyorService",
        "metadata": {"name": "demo"},
        "spec": {"model": {"name": "/opt/conveyor/models/tiny"}, "tools": {"enabled": ["python"]}},
    }
    with KopfRunner(["run", "--standalone", "--namespace", namespace], registry=registry):
        created = objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
        uid = created["metadata"]["uid"]
        dep = _wait(lambda: apps.read_namespaced_deployment("demo", namespace), "the Deployment")
        assert dep.metadata.owner_references[0].uid == uid
        _wait(lambda: core.read_namespaced_service("demo", namespace), "the Service")
        first = _wait(lambda: core.read_namespaced_config_map("demo-tools", namespace), "the CM")

        core.delete_namespaced_config_map("demo-tools", namespace)

        def recreated() -> bool:
            again = core.read_namespaced_config_map("demo-tools", namespace)
            return bool(again.metadata.uid != first.metadata.uid)

        _wait(recreated, "the ConfigMap to come back")

        def has_status() -> bool:
            got = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "demo")
            types = {c["type"] for c in got.get("status", {}).get("conditions", [])}
            return types == {"Ready", "Progressing", "Degraded"}

        _wait(has_status, "the status conditions")
        # A real API server does the server-side apply: a field taken out of the spec leaves
        # the Deployment, and no finalizer holds the object when it is deleted.
        add = {"spec": {"nodeSelector": {"example.com/pool": "a"}}}
        objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "demo", add)

        def template_selector() -> dict[str, str] | None:
            read = apps.read_namespaced_deployment("demo", namespace)
            return read.spec.template.spec.node_selector  # type: ignore[no-any-return]

        _wait(lambda: template_selector() == {"example.com/pool": "a"}, "the nodeSelector")
        drop = {"spec": {"nodeSelector": None}}
        objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "demo", drop)
        _wait(lambda: template_selector() is None, "the nodeSelector to go")
        got = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "demo")
        assert not got["metadata"].get("finalizers")
        objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "demo")
