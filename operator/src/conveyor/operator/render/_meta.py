"""Names, labels and owner references shared by every child of a ConveyorService."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conveyor.operator.spec import API_VERSION, KIND, ConveyorServiceSpec, parse_spec

MANAGED_BY = "conveyor-operator"
CHECKSUM_ANNOTATION = "conveyor.dev/tools-config-checksum"
HTTP_PORT = 8000
SIDECAR_PORT = 8001
METRICS_PORT = 9090


@dataclass(frozen=True)
class ConveyorService:
    """A ConveyorService object as rendering reads it: its identity and its typed spec."""

    name: str
    namespace: str
    uid: str
    generation: int
    spec: ConveyorServiceSpec

    @classmethod
    def from_object(cls, obj: dict[str, Any]) -> ConveyorService:
        meta = obj.get("metadata", {})
        return cls(
            name=meta["name"],
            namespace=meta.get("namespace") or "default",
            uid=meta.get("uid", ""),
            generation=int(meta.get("generation") or 1),
            spec=parse_spec(obj.get("spec") or {}),
        )

    @property
    def config_map_name(self) -> str:
        return f"{self.name}-tools"

    @property
    def endpoint(self) -> str:
        return f"http://{self.name}.{self.namespace}.svc:{HTTP_PORT}/v1"

    def selector_labels(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": "conveyor", "app.kubernetes.io/instance": self.name}

    def selector(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.selector_labels().items())

    def labels(self, component: str) -> dict[str, str]:
        return {
            **self.selector_labels(),
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/managed-by": MANAGED_BY,
        }

    def metadata(self, name: str, component: str) -> dict[str, Any]:
        return {
            "name": name,
            "namespace": self.namespace,
            "labels": self.labels(component),
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": KIND,
                    "name": self.name,
                    "uid": self.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        }
