"""The operator's only door to the Kubernetes API (an import-linter contract keeps it so).

Blocking calls on the `kubernetes` client's REST layer, by path, for the few kinds the operator
touches; handlers run them in a thread. Children are written with server-side apply of their whole
desired state under one field manager, so a field changed by hand is put back and a field the
operator stops rendering is removed.
"""

from __future__ import annotations

import datetime
import json
import os
import uuid
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config

from conveyor.operator.pods import pod_problems
from conveyor.operator.render import (
    CHILD_KINDS,
    MANAGED_BY,
    ConveyorService,
    requested_add_on_kinds,
)
from conveyor.operator.spec import API_VERSION, PLURAL
from conveyor.operator.status import ClusterFacts

FIELD_MANAGER = MANAGED_BY
_PLURALS = {(k.api_version, k.kind): k.plural for k in CHILD_KINDS}


class ApiError(Exception):
    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        try:
            message = json.loads(body).get("message", body)
        except (ValueError, AttributeError):
            message = body
        super().__init__(f"{method} {path}: {status} {str(message)[:300]}")
        self.status = status


@dataclass(frozen=True)
class Credentials:
    """What kopf needs to log in the same way as this client."""

    server: str
    token: str | None = None
    ca_path: str | None = None
    insecure: bool = False
    certificate_path: str | None = None
    private_key_path: str | None = None


def _collection(api_version: str, plural: str, namespace: str | None) -> str:
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    return f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"


def _container_statuses(pod: dict[str, Any]) -> list[dict[str, Any]]:
    status = pod.get("status") or {}
    return [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]


def object_path(api_version: str, plural: str, namespace: str | None, name: str) -> str:
    return f"{_collection(api_version, plural, namespace)}/{name}"


class Kube:
    def __init__(self, configuration: client.Configuration) -> None:
        self._config = configuration
        self._api = client.ApiClient(configuration)

    @classmethod
    def connect(cls, kubeconfig: str | None = None) -> Kube:
        """In-cluster credentials when running in a pod, else the kubeconfig (or $KUBECONFIG)."""
        cfg = client.Configuration()
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=cfg)
        else:
            config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        return cls(cfg)

    def credentials(self) -> Credentials:
        cfg = self._config
        bearer = cfg.get_api_key_with_prefix("authorization") or ""
        return Credentials(
            server=cfg.host,
            token=bearer.removeprefix("Bearer ").strip() or None,
            ca_path=cfg.ssl_ca_cert,
            insecure=not cfg.verify_ssl,
            certificate_path=cfg.cert_file,
            private_key_path=cfg.key_file,
        )

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str | None = None,
        query: list[tuple[str, str]] | None = None,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        m, url, hdrs, data, post = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self._api.call_api(m, url, hdrs, data, post, _request_timeout=30)
        raw = response.read()
        text = raw.decode() if isinstance(raw, bytes) else str(raw or "")
        if response.status >= 400:
            raise ApiError(response.status, method, path, text)
        return json.loads(text) if text else None

    def get(self, api_version: str, plural: str, namespace: str | None, name: str) -> Any:
        try:
            return self._call("GET", object_path(api_version, plural, namespace, name))
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def get_like(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        meta = obj["metadata"]
        plural = _PLURALS[obj["apiVersion"], obj["kind"]]
        return self.get(obj["apiVersion"], plural, meta.get("namespace"), meta["name"])  # type: ignore[no-any-return]

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply; creates the object where the server will not (an emulator)."""
        meta = obj["metadata"]
        plural = _PLURALS[obj["apiVersion"], obj["kind"]]
        path = object_path(obj["apiVersion"], plural, meta.get("namespace"), meta["name"])
        query = [("fieldManager", FIELD_MANAGER), ("force", "true")]
        try:
            return self._call("PATCH", path, obj, "application/apply-patch+yaml", query)  # type: ignore[no-any-return]
        except ApiError as e:
            if e.status != 404:
                raise
        collection = _collection(obj["apiVersion"], plural, meta.get("namespace"))
        return self._call("POST", collection, obj, query=[("fieldManager", FIELD_MANAGER)])  # type: ignore[no-any-return]

    def delete_owned(
        self, api_version: str, plural: str, namespace: str, name: str, uid: str
    ) -> bool:
        """Delete a child the ConveyorService `uid` owns; anything else of that name is left."""
        current = self.get(api_version, plural, namespace, name)
        if current is None:
            return False
        owners = current.get("metadata", {}).get("ownerReferences", [])
        if not any(o.get("uid") == uid for o in owners):
            return False
        try:
            self._call("DELETE", object_path(api_version, plural, namespace, name))
        except ApiError as e:
            if e.status != 404:
                raise
        return True

    def get_service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get(API_VERSION, PLURAL, namespace, name)  # type: ignore[no-any-return]

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        path = object_path(API_VERSION, PLURAL, namespace, name) + "/status"
        self._call("PATCH", path, {"status": status}, "application/merge-patch+json")

    def post_event(self, svc: ConveyorService, kind: str, reason: str, message: str) -> None:
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{svc.name}.{uuid.uuid4().hex[:16]}", "namespace": svc.namespace},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": "ConveyorService",
                "name": svc.name,
                "namespace": svc.namespace,
                "uid": svc.uid,
            },
            "type": kind,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": MANAGED_BY},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self._call("POST", _collection("v1", "events", svc.namespace), event)

    def facts(self, svc: ConveyorService) -> ClusterFacts:
        """What only the cluster can tell; a check the operator may not make is skipped.

        Secrets are never read: a missing one shows in the pods' status (the operator has no
        Secret permission at all), and so do images that cannot be pulled and GPUs no node has.
        """
        spec, ns = svc.spec, svc.namespace
        claims = [c.claim_name for c in (spec.model_cache, spec.model.source.pvc) if c is not None]
        pods = self.list("v1", "pods", ns, [("labelSelector", svc.selector())])
        # Only a container that started and is not ready has a probe output worth reading.
        unready = {
            pod["metadata"]["name"]
            for pod in pods
            for status in _container_statuses(pod)
            if status.get("started") and not status.get("ready")
        }
        events: list[dict[str, Any]] = []
        if unready:
            query = [("fieldSelector", "involvedObject.kind=Pod,reason=Unhealthy")]
            found = self.list("v1", "events", ns, query)
            events = [e for e in found if (e.get("involvedObject") or {}).get("name") in unready]
        return ClusterFacts(
            missing_claims=tuple(
                n for n in claims if self._missing("persistentvolumeclaims", ns, n)
            ),
            service_monitors=self._serves("monitoring.coreos.com/v1", "servicemonitors"),
            pod_problems=tuple(pod_problems(pods, events)),
            missing_apis=tuple(
                kind
                for kind in requested_add_on_kinds(svc)
                if not self._serves(kind.api_version, kind.plural)
            ),
        )

    def list(
        self, api_version: str, plural: str, namespace: str, query: list[tuple[str, str]]
    ) -> list[dict[str, Any]]:
        """The items of a namespaced list; the selectors also filter here, as an emulator
        may ignore them."""
        found = self._call("GET", _collection(api_version, plural, namespace), query=query)
        items: list[dict[str, Any]] = (found or {}).get("items") or []
        for key, value in query:
            if key == "labelSelector":
                wanted = dict(part.split("=", 1) for part in value.split(","))
                items = [
                    i for i in items
                    if wanted.items() <= ((i.get("metadata") or {}).get("labels") or {}).items()
                ]  # fmt: skip
        return items

    def _missing(self, plural: str, namespace: str, name: str) -> bool:
        try:
            return self.get("v1", plural, namespace, name) is None
        except ApiError as e:
            if e.status == 403:
                return False
            raise

    def _serves(self, group_version: str, plural: str) -> bool:
        try:
            found = self._call("GET", f"/apis/{group_version}")
        except ApiError as e:
            if e.status in (403, 404):
                return False
            raise
        return any(r.get("name") == plural for r in (found or {}).get("resources", []))
