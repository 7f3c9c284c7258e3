"""The kopf handlers: thin triggers around one level-based reconcile.

Whatever woke the operator (a ConveyorService created or changed, a child changed or deleted, one
of its pods changed), the same `Reconciler.reconcile` renders the desired children, applies the
ones whose desired state changed or drifted, removes the ones no longer wanted and writes the
status. It never raises for a problem in the cluster: that becomes a `Degraded` condition and an
event, never a crash loop.

No handler needs a finalizer (no timer, no daemon, no on-delete handler: the children go with
their owner by garbage collection), so kopf puts none on a ConveyorService and uninstalling the
operator never leaves one stuck terminating. What a timer would re-check (a Secret created later,
a node with GPUs joining) shows in the pods, whose events wake the operator.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import logging
from collections.abc import Callable
from typing import Any

import kopf

from conveyor.operator._schema import SpecError
from conveyor.operator.drift import drifted, fingerprinted
from conveyor.operator.kube import ApiError, Kube
from conveyor.operator.render import CHILD_KINDS, MANAGED_BY, ConveyorService, Images, render
from conveyor.operator.spec import GROUP, KIND, PLURAL, VERSION
from conveyor.operator.status import (
    Problem,
    compute_status,
    find_problems,
    warnings_to_post,
)

# Earlier versions put this finalizer on every ConveyorService; kopf takes it off again because
# no handler needs it any more.
FINALIZER = "conveyor.dev/finalizer"
ANNOTATION_PREFIX = "conveyor.dev"
log = logging.getLogger("conveyor.operator")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _child_name(svc: ConveyorService, kind: str) -> str:
    return svc.config_map_name if kind == "ConfigMap" else svc.name


class Reconciler:
    """Holds the API client and one lock per ConveyorService, so passes never interleave."""

    def __init__(self, kube_factory: Callable[[], Kube], images: Images) -> None:
        self._kube_factory = kube_factory
        self.images = images
        self._kube: Kube | None = None
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    @property
    def kube(self) -> Kube:
        if self._kube is None:
            self._kube = self._kube_factory()
        return self._kube

    async def _io(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    async def reconcile_named(self, namespace: str, name: str) -> None:
        obj = await self._io(self.kube.get_service, namespace, name)
        if obj is not None:
            await self.reconcile(obj)

    async def reconcile(self, obj: dict[str, Any]) -> list[Problem]:
        meta = obj.get("metadata", {})
        if meta.get("deletionTimestamp"):
            return []  # the children go with it, by their owner references
        key = (meta.get("namespace") or "default", meta["name"])
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            # Re-read: the body that woke us may be older than the last pass's status.
            fresh = await self._io(self.kube.get_service, *key)
            if fresh is None or fresh.get("metadata", {}).get("deletionTimestamp"):
                return []
            return await self._pass(fresh)

    async def _pass(self, obj: dict[str, Any]) -> list[Problem]:
        meta = obj["metadata"]
        previous = obj.get("status") or {}
        try:
            svc = ConveyorService.from_object(obj)
        except SpecError as e:
            # The CRD schema refuses such a spec; only an old or hand-installed CRD lets one in.
            await self._report_invalid(meta, previous, str(e))
            return [Problem("InvalidSpec", str(e))]

        problems: list[Problem] = []
        try:
            facts = await self._io(self.kube.facts, svc)
        except Exception as e:  # any API failure is reported, not raised
            facts = None
            problems.append(Problem("ClusterUnreachable", f"cannot inspect the cluster: {e}"))
        if facts is not None:
            problems += find_problems(svc, facts)
        monitors = bool(facts and facts.service_monitors)
        # A kind whose API is missing is reported (find_problems), not applied and retried.
        missing = {k.kind for k in facts.missing_apis} if facts is not None else set()
        desired = [
            fingerprinted(c)
            for c in render(obj, images=self.images, service_monitors=monitors)
            if c["kind"] not in missing
        ]
        problems += await self._apply(desired)
        problems += await self._prune(svc, {o["kind"] for o in desired}, facts)

        try:
            deployment = await self._io(
                self.kube.get, "apps/v1", "deployments", svc.namespace, svc.name
            )
        except Exception:
            deployment = None
        images = self.images.in_use(svc.spec)
        status = compute_status(svc, deployment, problems, previous, _now(), images)
        try:
            if status != previous:
                await self._io(self.kube.patch_status, svc.namespace, svc.name, status)
            for warning in warnings_to_post(previous, status):
                await self._io(
                    self.kube.post_event, svc, "Warning", warning.reason, warning.message
                )
        except Exception as e:
            log.warning("cannot report the status of %s/%s: %s", svc.namespace, svc.name, e)
        return problems

    async def _apply(self, desired: list[dict[str, Any]]) -> list[Problem]:
        problems = []
        for child in desired:
            what = f"{child['kind']} {child['metadata']['name']}"
            try:
                actual = await self._io(self.kube.get_like, child)
                if actual is None or drifted(child, actual):
                    log.info("applying %s (%s)", what, "missing" if actual is None else "drifted")
                    await self._io(self.kube.apply, child)
            except Exception as e:
                problems.append(Problem("ApplyFailed", f"cannot apply {what}: {e}"))
        return problems

    async def _prune(self, svc: ConveyorService, wanted: set[str], facts: Any) -> list[Problem]:
        problems = []
        for kind in CHILD_KINDS:
            if kind.kind in wanted:
                continue
            if kind.kind == "ServiceMonitor" and not (facts and facts.service_monitors):
                continue  # the API is not there, so neither is the object
            name = _child_name(svc, kind.kind)
            try:
                args = (kind.api_version, kind.plural, svc.namespace, name, svc.uid)
                if await self._io(self.kube.delete_owned, *args):
                    log.info("deleted %s %s: no longer in the spec", kind.kind, name)
            except ApiError as e:
                problems.append(Problem("DeleteFailed", f"cannot delete {kind.kind} {name}: {e}"))
        return problems

    async def _report_invalid(
        self, meta: dict[str, Any], previous: dict[str, Any], msg: str
    ) -> None:
        cond = {
            "type": "Degraded",
            "status": "True",
            "reason": "InvalidSpec",
            "message": msg,
            "observedGeneration": int(meta.get("generation") or 1),
            "lastTransitionTime": _now(),
        }
        others = [c for c in previous.get("conditions", []) if c.get("type") != "Degraded"]
        status = {**previous, "conditions": [*others, cond]}
        ns = meta.get("namespace") or "default"
        try:
            await self._io(self.kube.patch_status, ns, meta["name"], status)
        except Exception as e:
            log.warning("cannot report the status of %s/%s: %s", ns, meta["name"], e)


def _owner_name(body: Any) -> str | None:
    for ref in body.get("metadata", {}).get("ownerReferences", []) or []:
        if ref.get("kind") == KIND and ref.get("apiVersion", "").startswith(f"{GROUP}/"):
            return str(ref.get("name"))
    return None


def build_registry(
    kube_factory: Callable[[], Kube], *, images: Images | None = None
) -> kopf.OperatorRegistry:
    """A fresh kopf registry with every handler, bound to one Reconciler."""
    registry = kopf.OperatorRegistry()
    reconciler = Reconciler(kube_factory, images or Images.local())

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = FINALIZER
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
            prefix=ANNOTATION_PREFIX
        )
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
        )
        # The reconciler posts the events that matter; kopf's per-handler ones are noise.
        settings.posting.level = logging.WARNING
        # Resources are discovered once at start. Without this kopf would also watch Namespaces
        # and CRDs, which needs cluster-wide RBAC even for an operator given --namespace.
        settings.scanning.disabled = True

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        creds = reconciler.kube.credentials()
        return kopf.ConnectionInfo(
            server=creds.server,
            token=creds.token,
            ca_path=creds.ca_path,
            insecure=creds.insecure,
            certificate_path=creds.certificate_path,
            private_key_path=creds.private_key_path,
        )

    @kopf.on.resume(GROUP, VERSION, PLURAL, id="reconcile", registry=registry)
    @kopf.on.create(GROUP, VERSION, PLURAL, id="reconcile", registry=registry)
    @kopf.on.update(GROUP, VERSION, PLURAL, id="reconcile", registry=registry)
    async def service_changed(body: kopf.Body, **_: Any) -> None:
        problems = await reconciler.reconcile(copy.deepcopy(dict(body)))
        if any(p.reason in ("ApplyFailed", "ClusterUnreachable") for p in problems):
            # Reported already; let kopf try again later with its back-off.
            raise kopf.TemporaryError("some children could not be applied", delay=30)

    labels = {"app.kubernetes.io/managed-by": MANAGED_BY}
    for child in CHILD_KINDS:
        group, _, version = child.api_version.rpartition("/")

        @kopf.on.event(
            group, version, child.plural, labels=labels, id=f"child-{child.plural}",
            registry=registry,
        )  # fmt: skip
        async def child_changed(body: kopf.Body, namespace: str | None, **_: Any) -> None:
            owner = _owner_name(body)
            if owner is not None and namespace:
                await reconciler.reconcile_named(namespace, owner)

    # A pod's trouble (crash loop, image pull, readiness) and its recovery change the status.
    @kopf.on.event("", "v1", "pods", labels=labels, id="pods", registry=registry)
    async def pod_changed(body: kopf.Body, namespace: str | None, **_: Any) -> None:
        instance = (body.get("metadata", {}).get("labels") or {}).get("app.kubernetes.io/instance")
        if instance and namespace:
            await reconciler.reconcile_named(namespace, instance)

    return registry
