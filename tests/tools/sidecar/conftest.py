"""Real sidecar processes for the sidecar tests: ``conveyor-tools serve`` on a free port."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

EXTRA_ARGS: list[str] = os.environ.get("CONVEYOR_SIDECAR_TEST_ARGS", "").split()
SECRET = "hunter2-sidecar-secret"

# Small limits and short timeouts keep the fault tests fast. The memory bomb must reach the
# memory limit within the CPU limit: on this VM, faulting memory in costs up to several ms of
# CPU per MiB at times.
BASE_CONFIG: dict[str, Any] = {
    "pool": {"warm_workers": 2, "max_workers": 24, "session_idle_seconds": 30},
    "limits": {
        "cpu_seconds": 1,
        "memory_mb": 192,
        "nproc": 24,
        "wall_seconds": 3,
        "max_invocation_seconds": 30,
        "max_output_bytes": 65536,
    },
    "server": {"max_frame_bytes": 65536, "grace_seconds": 1.5},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SidecarProcess:
    proc: subprocess.Popen[bytes]
    port: int
    config_path: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/invocations"

    def metrics(self) -> dict[str, float]:
        """Every sample as ``name{label="v",...}`` → value (labels sorted)."""
        text = httpx.get(self.url + "/metrics", trust_env=False).text
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return out

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def start_sidecar(
    workdir: Path, overrides: dict[str, Any] | None = None, port: int | None = None
) -> SidecarProcess:
    config = {k: dict(v) for k, v in BASE_CONFIG.items()}
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key].update(value)
        else:
            config[key] = value
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "tools.yaml"
    config_path.write_text(yaml.safe_dump(config) + f"# {SECRET}\n")
    config_path.chmod(0o600)
    log_path = workdir / "sidecar.log"
    port = port or free_port()
    env = {**os.environ, "CONVEYOR_TEST_SECRET": SECRET}
    exe = Path(sys.executable).with_name("conveyor-tools")
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [str(exe), "serve", "--port", str(port), "--config", str(config_path), *EXTRA_ARGS],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    sidecar = SidecarProcess(proc, port, config_path, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sidecar exited ({proc.returncode}):\n{sidecar.log()}")
        try:
            if httpx.get(sidecar.url + "/readyz", trust_env=False).status_code == 200:
                return sidecar
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    sidecar.stop(signal.SIGKILL)
    raise RuntimeError(f"sidecar not ready in time:\n{sidecar.log()}")


@pytest.fixture(scope="session")
def outside_tmp() -> Iterator[Path]:
    """A directory outside /tmp (workers see a private /tmp), readable by any uid."""
    path = Path(tempfile.mkdtemp(prefix="conveyor-sidecar-test-", dir="/run"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def fake_secrets(outside_tmp: Path) -> Path:
    """Stands in for /var/run/secrets/kubernetes.io (not mounted on this host)."""
    token = outside_tmp / "secrets" / "kubernetes.io" / "serviceaccount" / "token"
    token.parent.mkdir(parents=True)
    token.write_text(SECRET)
    token.chmod(0o644)  # as Kubernetes mounts it: world-readable, so only hiding protects it
    for parent in token.parents:
        if parent == outside_tmp:
            break
        parent.chmod(0o755)
    return outside_tmp / "secrets"


TEST_UID_BASE = 63000


@pytest.fixture(scope="module")
def sidecar(
    tmp_path_factory: pytest.TempPathFactory, fake_secrets: Path
) -> Iterator[SidecarProcess]:
    """One sidecar shared by a test module, with every built-in tool enabled."""
    workdir = tmp_path_factory.mktemp("sidecar")
    proc = start_sidecar(
        workdir,
        {
            "isolation": {
                "hide_paths": ["/var/run/secrets", "/run/secrets", str(fake_secrets)],
                # Uids of its own: other sidecars on the host (the runtime tests') use the
                # default range, and the fault tests count processes by uid.
                "uid_base": TEST_UID_BASE,
            }
        },
    )
    yield proc
    proc.stop()
