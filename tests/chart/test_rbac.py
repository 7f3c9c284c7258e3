"""The chart grants the operator exactly the permissions it uses: nothing missing, nothing more.

What the operator uses is observed, not restated: its `Kube` class (the one module that talks to
the API) runs every operation against a real HTTP server on 127.0.0.1 that records each request
(a stand-in for the API server, which cannot run here), and kopf's needs come from the handler
registry the operator builds (list/watch for every watched resource, patch for the resources
whose progress kopf stores on the object, events) plus its peering record. The API server's own
check adds one: a child with blockOwnerDeletion needs update on the owner's finalizers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import chart
import pytest
import yaml
from chart import of_kind
from kubernetes import client

from conveyor.operator.handlers import build_registry
from conveyor.operator.kube import Kube
from conveyor.operator.render import CHILD_KINDS, ConveyorService, render

Permission = tuple[str, str, str]  # (apiGroup, resource[/subresource], verb)
UID = "2f1c5d8e-0000-4000-8000-000000000001"
POD_LABELS: dict[str, str] = {}  # set per sample: the selector labels of its pods
SAMPLES = sorted((chart.ROOT / "manifests" / "samples").glob("*.yaml"))


class Recorder(BaseHTTPRequestHandler):
    """Answers like an API server just enough for each Kube operation to run to its end."""

    calls: list[tuple[str, str]] = []
    patch_status = 200  # 404 makes Kube.apply fall back to a create

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> str:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.calls.append((self.command, self.path))
        return urlsplit(self.path).path

    def do_GET(self) -> None:
        path = self._record()
        if path.startswith("/apis/") and path.count("/") == 3:
            self._answer(200, {"resources": [{"name": "servicemonitors"}]})
        elif "/persistentvolumeclaims/" in path:
            self._answer(404, {"message": "not found"})
        elif path.endswith("/pods"):
            # A pod whose container started and is not ready: the operator reads its events.
            unready = {"name": "tools", "started": True, "ready": False}
            pod = {
                "metadata": {"name": "p", "labels": dict(POD_LABELS)},
                "status": {"initContainerStatuses": [unready]},
            }
            self._answer(200, {"items": [pod]})
        elif path.endswith("/events"):
            self._answer(200, {"items": []})
        else:
            self._answer(200, {"metadata": {"ownerReferences": [{"uid": UID}]}})

    def do_PATCH(self) -> None:
        self._record()
        if self.patch_status == 404:
            self._answer(404, {"message": "not found"})
        else:
            self._answer(200, {})

    def do_POST(self) -> None:
        self._record()
        self._answer(201, {})

    def do_DELETE(self) -> None:
        self._record()
        self._answer(200, {})


@pytest.fixture
def api_server() -> Iterator[str]:
    Recorder.calls = []
    Recorder.patch_status = 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def permission(method: str, url: str) -> Permission | None:
    """The RBAC permission an API request needs; None for discovery (no RBAC rule needed)."""
    split = urlsplit(url)
    parts = [p for p in split.path.split("/") if p]
    if parts[0] == "api":
        group, rest = "", parts[2:]
    else:
        group, rest = parts[1], parts[3:]
    if not rest:
        return None
    if rest[0] == "namespaces" and len(rest) > 2:
        rest = rest[2:]
    resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
    named = len(rest) > 1
    verb = {
        "GET": "get" if named else "list",
        "POST": "create",
        "PATCH": "patch",
        "PUT": "update",
        "DELETE": "delete",
    }[method]
    if method == "GET" and parse_qs(split.query).get("watch") == ["true"]:
        verb = "watch"
    return group, resource, verb


def sample_service(path: Path) -> tuple[dict[str, Any], ConveyorService]:
    obj = yaml.safe_load(path.read_text())
    obj["metadata"].update(namespace="models", uid=UID, generation=1)
    return obj, ConveyorService.from_object(obj)


def kube_permissions(server: str) -> set[Permission]:
    kube = Kube(client.Configuration(host=server))
    found: set[Permission] = set()
    for path in SAMPLES:
        obj, svc = sample_service(path)
        POD_LABELS.clear()
        POD_LABELS.update(svc.selector_labels())
        children = render(obj, service_monitors=True)
        if any(
            ref.get("blockOwnerDeletion")
            for child in children
            for ref in child["metadata"]["ownerReferences"]
        ):
            found.add(("conveyor.dev", "conveyorservices/finalizers", "update"))
        for patch_status in (200, 404):
            Recorder.patch_status = patch_status
            for child in children:
                kube.apply(child)
        Recorder.patch_status = 200
        for child in children:
            kube.get_like(child)
        for kind in CHILD_KINDS:
            kube.delete_owned(kind.api_version, kind.plural, svc.namespace, svc.name, UID)
        kube.get_service(svc.namespace, svc.name)
        kube.patch_status(svc.namespace, svc.name, {"replicas": 1})
        kube.post_event(svc, "Warning", "Test", "recorded")
        kube.facts(svc)
    found |= {p for method, url in Recorder.calls if (p := permission(method, url)) is not None}
    return found


def kopf_permissions(namespaced: bool) -> set[Permission]:
    registry = build_registry(lambda: Kube(client.Configuration(host="http://127.0.0.1:9")))
    # kopf posts events about handlers and keeps its replicas' keep-alives in the peering record
    # (watched, and patched by each replica); it scans no CRDs (scanning is off).
    peering = "kopfpeerings" if namespaced else "clusterkopfpeerings"
    needed: set[Permission] = {("", "events", "create")}
    needed |= {("kopf.dev", peering, verb) for verb in ("list", "watch", "patch")}
    for handler in registry._watching.get_all_handlers():
        needed |= {(*resource_of(handler.selector), v) for v in ("list", "watch")}
    for handlers in (registry._changing.get_all_handlers(), registry._spawning.get_all_handlers()):
        for handler in handlers:
            # Annotations progress storage is patched onto the object.
            needed |= {(*resource_of(handler.selector), v) for v in ("list", "watch", "patch")}
    return needed


def resource_of(selector: Any) -> tuple[str, str]:
    """A kopf selector's (group, plural); the operator names resources by their plural."""
    assert selector is not None
    plural = selector.plural or selector.any_name
    assert isinstance(plural, str), selector
    return selector.group or "", plural


def granted(rules_objects: list[dict[str, Any]]) -> set[Permission]:
    return {
        (group, resource, verb)
        for obj in rules_objects
        for rule in obj["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def operator_roles(rendered: list[dict[str, Any]]) -> list[dict[str, Any]]:
    roles = of_kind(rendered, "ClusterRole") + of_kind(rendered, "Role")
    return [r for r in roles if r["metadata"]["name"].endswith("-operator")]


def test_samples_exercise_every_child_kind() -> None:
    kinds = {
        child["kind"]
        for path in SAMPLES
        for child in render(sample_service(path)[0], service_monitors=True)
    }
    assert kinds == {kind.kind for kind in CHILD_KINDS}


def test_the_permission_of_a_request() -> None:
    assert permission("GET", "/apis/apps/v1/namespaces/a/deployments/b") == (
        "apps",
        "deployments",
        "get",
    )
    assert permission("GET", "/apis/x.io/v1/namespaces/a/things?watch=true") == (
        "x.io",
        "things",
        "watch",
    )
    assert permission("PATCH", "/apis/x.io/v1/namespaces/a/things/b/status") == (
        "x.io",
        "things/status",
        "patch",
    )
    assert permission("GET", "/api/v1/nodes") == ("", "nodes", "list")
    assert permission("GET", "/apis/monitoring.coreos.com/v1") is None


@pytest.mark.parametrize("mode", ["cluster-wide", "namespaced"])
def test_rbac_is_exactly_what_the_operator_uses(api_server: str, render: Any, mode: str) -> None:
    needed = kube_permissions(api_server) | kopf_permissions(mode == "namespaced")
    rendered = render() if mode == "cluster-wide" else render("operator.watchNamespace=models")
    given = granted(operator_roles(rendered))
    assert sorted(needed - given) == [], "the operator would be forbidden these"
    assert sorted(given - needed) == [], "the chart grants these but the operator never uses them"


def test_no_secret_is_readable_and_namespaced_mode_needs_nothing_cluster_wide(
    render: Any,
) -> None:
    for rendered in (render(), render("operator.watchNamespace=models")):
        assert not any(res == "secrets" for _, res, _ in granted(operator_roles(rendered)))
    namespaced = render("operator.watchNamespace=models")
    assert not [
        r for r in of_kind(namespaced, "ClusterRole") if r["metadata"]["name"].endswith("-operator")
    ]
    # Cluster-wide, the only cluster-scoped resource is the peering record.
    cluster = [
        r for r in of_kind(render(), "ClusterRole") if r["metadata"]["name"].endswith("-operator")
    ]
    assert not {"customresourcedefinitions", "nodes"} & {res for _, res, _ in granted(cluster)}
