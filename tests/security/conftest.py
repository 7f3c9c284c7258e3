"""The three set-ups the attack suite runs against, one real `conveyor serve` each.

``root``  the whole server as root (this machine's default);
``user``  the whole server as uid 65532 with no capabilities (anyone running `make serve`);
``pod``   the runtime as root and `conveyor-tools serve` as uid 65532 with no capabilities, as a
          separate process reached over TCP (the tools container the operator renders).

Each set-up is started once per session and shared by every attack (an engine takes ~35 s).
The server's environment holds a secret, and a "mounted Secret" file sits inside a directory
that the tools are shown, listed in ``hide_paths``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest
import yaml
from process_testkit import free_port, wait_http

UID = 65532
SETPRIV = [
    "setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups",
    "--inh-caps=-all", "--bounding-set=-all",
]  # fmt: skip
SETUPS = ("root", "user", "pod")
# Small limits keep the attacks quick; they are what the assertions name. The memory attacks
# must reach the memory limit within the CPU limit: on this VM, faulting memory in costs up to
# several ms of CPU per MiB at times.
LIMITS = {
    "cpu_seconds": 4,
    "session_cpu_seconds": 6,
    "memory_mb": 256,
    "nproc": 16,
    "disk_mb": 32,
    "wall_seconds": 30,
    "max_output_bytes": 1024,  # what the model reads back must fit the tiny model's context
}


@dataclass
class Setup:
    name: str
    base_url: str
    client: openai.OpenAI
    model: str
    secret: str
    secret_file: Path  # a mounted Secret, inside a directory the tools are shown
    config: Path  # tools.yaml
    runtime: subprocess.Popen
    sidecar: subprocess.Popen | None  # the separate sidecar of the pod set-up
    sidecar_port: int | None


def _end(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _as_user(command: list[str]) -> list[str]:
    """``command`` as uid 65532 without capabilities, with the interpreter reachable.

    The venv's interpreter lives under a directory only root may enter (pyenv in /root). In a
    mount namespace of this test's own, that directory is covered by an empty one that holds
    only the interpreter, so the uid can run it; nothing on the host changes.
    """
    prefix = os.path.realpath(sys.base_prefix)
    parts = prefix.strip("/").split("/")
    private = next(
        (
            "/" + "/".join(parts[:n])
            for n in range(1, len(parts))
            if not os.stat("/" + "/".join(parts[:n])).st_mode & 0o001
        ),
        None,
    )
    if private is None:
        return [*SETPRIV, *command]
    script = (
        'set -e; stage=$(mktemp -d); mount --bind "$1" "$stage"; '
        'mount -t tmpfs -o mode=0755,size=1m tmpfs "$2"; mkdir -p "$1"; '
        'mount --move "$stage" "$1"; shift 2; exec "$@"'
    )
    return [
        "unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
        prefix, private, *SETPRIV, *command,
    ]  # fmt: skip


def _readable_copy(src: Path, root: Path) -> Path:
    dest = root / src.name
    shutil.copytree(src, dest)
    for path in [dest, *dest.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return dest


@pytest.fixture(scope="session", params=SETUPS)
def setup(request: pytest.FixtureRequest, tiny_model: Path) -> Iterator[Setup]:
    name = request.param
    root = Path(tempfile.mkdtemp(prefix=f"conveyor-security-{name}-"))
    root.chmod(0o755)
    secret = "conveyor-secret-" + secrets.token_hex(8)
    shown = root / "shown"  # exposed to tools; the Secret inside it is hidden
    (shown / "secret").mkdir(parents=True)
    (shown / "readme.txt").write_text("visible\n")
    secret_file = shown / "secret" / "token"
    secret_file.write_text(secret)
    for path in (shown, shown / "secret"):
        path.chmod(0o755)
    for path in (shown / "readme.txt", secret_file):
        path.chmod(0o644)
    config = root / "tools.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "tools": {
                    "python": {},
                    "calculator": {},
                    # A planner that may reach the network: its python steps still may not.
                    "planner": {"network": True},
                },
                "limits": LIMITS,
                "pool": {"warm_workers": 2},
                "isolation": {
                    "uid_base": 64000,
                    "expose_paths": [str(shown)],
                    "hide_paths": ["/var/run/secrets", "/run/secrets", str(shown / "secret")],
                },
            }
        )
    )
    config.chmod(0o644)
    model = _readable_copy(tiny_model, root) if name != "root" else tiny_model
    home = root / "home"
    home.mkdir()
    if name != "root":
        os.chown(home, UID, UID)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "CONVEYOR_TEST_SECRET": secret,
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_LOGGING_LEVEL": "WARNING",
    }
    port = free_port()
    serve = [
        sys.executable, "-m", "conveyor.runtime.cli", "serve", "--model", str(model),
        "--allow-replay", "--port", str(port), "--max-model-len", "4096", "--tool-timeout", "60",
    ]  # fmt: skip
    sidecar = None
    sidecar_port = None
    runtime = None
    try:
        if name == "pod":
            sidecar_port = free_port()
            sidecar = subprocess.Popen(
                _as_user(
                    [
                        sys.executable,
                        "-m",
                        "conveyor.tools.cli",
                        "serve",
                        "--port",
                        str(sidecar_port),
                        "--config",
                        str(config),
                        "--log-level",
                        "warning",
                    ]
                ),  # fmt: skip
                env=env,
            )
            wait_http(f"http://127.0.0.1:{sidecar_port}/readyz", sidecar, 120)
            serve += ["--sidecar", f"http://127.0.0.1:{sidecar_port}"]
        else:
            serve += ["--tools-config", str(config)]
        runtime = subprocess.Popen(_as_user(serve) if name == "user" else serve, env=env)
        base_url = f"http://127.0.0.1:{port}"
        wait_http(f"{base_url}/ready", runtime, 900)  # engines start slowly on a loaded host
        client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", timeout=120)
        model_id = client.models.list().data[0].id
        yield Setup(
            name, base_url, client, model_id, secret, secret_file, config,
            runtime, sidecar, sidecar_port,
        )  # fmt: skip
    finally:
        _end(runtime)
        _end(sidecar)
        shutil.rmtree(root, ignore_errors=True)
