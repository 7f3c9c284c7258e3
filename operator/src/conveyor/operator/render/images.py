"""Which images a ConveyorService runs: its own override, else the operator's configured defaults.

The defaults are the operator's configuration (its --runtime-image, --runtime-cpu-image and
--tools-image, which the chart sets from one registry and one tag), resolved on every reconcile
and reported in status.images. They are never written into the CRD's schema, where the API server
would copy them into every object at admission and an upgrade would mean editing every object.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

from conveyor.operator.spec import ConveyorServiceSpec

# Where `make images` tags the images unless told otherwise: a name that exists only where you
# built or loaded the images (kind load, minikube image load), never a public registry.
LOCAL_REGISTRY = "localhost/conveyor"


def project_version() -> str:
    return metadata.version("conveyor-operator")


@dataclass(frozen=True)
class Images:
    """The operator's default images."""

    runtime: str
    runtime_cpu: str
    tools: str

    @classmethod
    def from_registry(cls, registry: str, tag: str) -> Images:
        """The names `make images REGISTRY=... VERSION=...` gives the images it builds."""
        base = registry.rstrip("/")
        return cls(
            runtime=f"{base}/conveyor-runtime:{tag}",
            runtime_cpu=f"{base}/conveyor-runtime:{tag}-cpu",
            tools=f"{base}/conveyor-tools:{tag}",
        )

    @classmethod
    def local(cls) -> Images:
        return cls.from_registry(LOCAL_REGISTRY, project_version())

    def runtime_for(self, spec: ConveyorServiceSpec) -> str:
        if spec.engine.image:
            return spec.engine.image
        # The CUDA build of vLLM does not start without a GPU, so a CPU-only spec gets the CPU one.
        return self.runtime if spec.resources.gpus else self.runtime_cpu

    def tools_for(self, spec: ConveyorServiceSpec) -> str:
        return spec.tools.image or self.tools

    def in_use(self, spec: ConveyorServiceSpec) -> dict[str, str]:
        """What status.images reports."""
        return {"runtime": self.runtime_for(spec), "tools": self.tools_for(spec)}
