"""A built model directory's checksum manifest: written last, checked before every use.

A directory whose files match its manifest, and whose manifest names the current recipe, is
reused; anything else (missing, truncated or edited files, an older recipe) is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MANIFEST_NAME = "conveyor-model.json"


class ModelError(Exception):
    """A model directory that cannot be served; the message is one line for the user."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(directory: Path, spec: dict[str, Any]) -> None:
    files = sorted(p.name for p in directory.iterdir() if p.is_file())
    manifest = {"spec": spec, "files": {name: sha256_file(directory / name) for name in files}}
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def check_model(path: Path) -> None:
    """Raise ``ModelError`` unless ``path`` looks like a servable model directory.

    A directory built by this package is also checked against its manifest, so a truncated or
    edited file is caught here rather than deep inside the engine.
    """
    if not path.exists():
        raise ModelError(f"model path {path} does not exist")
    if not path.is_dir():
        raise ModelError(f"model path {path} is not a directory")
    config = path / "config.json"
    try:
        json.loads(config.read_text())
    except FileNotFoundError:
        raise ModelError(f"{path} is not a model directory: config.json is missing") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise ModelError(f"{config} is not valid JSON ({error})") from None
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        raise ModelError(f"{path} holds no weights (*.safetensors or *.bin)")
    manifest_path = path / MANIFEST_NAME
    if not manifest_path.exists():
        return
    try:
        expected = json.loads(manifest_path.read_text())["files"]
    except (ValueError, KeyError) as error:
        raise ModelError(f"{manifest_path} is corrupt ({error})") from None
    for name, digest in expected.items():
        file = path / name
        if not file.exists():
            raise ModelError(f"model {path} is incomplete: {name} is missing")
        if sha256_file(file) != digest:
            raise ModelError(f"model {path} is corrupt: {name} does not match its checksum")


def is_current(path: Path, spec: dict[str, Any]) -> bool:
    """Whether ``path`` is an intact build of exactly ``spec``."""
    if not (path / MANIFEST_NAME).exists():
        return False
    try:
        check_model(path)
        return json.loads((path / MANIFEST_NAME).read_text())["spec"] == spec
    except (ModelError, ValueError, KeyError):
        return False


def built_dtype(path: Path) -> str | None:
    """The dtype a directory built by this package was stored in, when its recipe names one."""
    try:
        return json.loads((path / MANIFEST_NAME).read_text())["spec"].get("dtype")
    except (OSError, ValueError, KeyError):
        return None


@contextmanager
def staged(out: Path) -> Iterator[Path]:
    """A fresh directory beside ``out`` that replaces it when the block succeeds.

    An interrupted build is thrown away and never looks intact.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide the model from other users
    try:
        yield staging
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
