"""What the operator renders, the runtime and the sidecar accept.

The operator stands alone (it imports neither package), so only a test that holds all three can
check that the command lines it writes into a Deployment are ones the real CLIs take.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from process_testkit import free_port, wait_http

from conveyor.operator.render import render
from conveyor.runtime.cli import build_parser
from conveyor.runtime.engine import engine_overrides

SAMPLES = sorted(Path(__file__).parents[2].joinpath("manifests", "samples").glob("*.yaml"))


def containers(sample: Path) -> tuple[dict, dict, str]:
    return containers_of(yaml.safe_load(sample.read_text()))


def containers_of(obj: dict) -> tuple[dict, dict, str]:
    children = render(obj)
    (deployment,) = [c for c in children if c["kind"] == "Deployment"]
    (config_map,) = [c for c in children if c["kind"] == "ConfigMap"]
    pod = deployment["spec"]["template"]["spec"]
    by_name = {c["name"]: c for c in pod["containers"] + pod["initContainers"]}
    return by_name["runtime"], by_name["tools"], config_map["data"]["tools.yaml"]


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.stem.split("-", 1)[1] for s in SAMPLES])
def test_the_runtime_accepts_its_rendered_command_line(sample: Path) -> None:
    runtime, _, _ = containers(sample)
    assert runtime["command"] == ["conveyor"]
    args, rest = build_parser().parse_known_args(runtime["args"])
    assert args.command == "serve" and args.sidecar == "http://127.0.0.1:8001"
    # spec.engine.drainSeconds reaches the runtime's own drain (uvicorn's graceful shutdown).
    spec = yaml.safe_load(sample.read_text())["spec"]
    assert args.drain_seconds == spec.get("engine", {}).get("drainSeconds", 60)
    engine_overrides(rest)  # vLLM's own parser: raises SystemExit on an unknown argument


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.stem.split("-", 1)[1] for s in SAMPLES])
def test_the_sidecar_accepts_its_rendered_command_line_and_config(
    sample: Path, tmp_path: Path
) -> None:
    _, tools, tools_yaml = containers(sample)
    config = tmp_path / "tools.yaml"
    config.write_text(tools_yaml)
    args = [str(config) if a == "/etc/conveyor/tools.yaml" else a for a in tools["args"]]
    assert tools["command"] == ["conveyor-tools"]
    done = subprocess.run(
        [sys.executable, "-m", "conveyor.tools.cli", *args, "--check-config"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    # Every variable tools.yaml reads a Secret's value from is set in the tools container.
    servers = yaml.safe_load(tools_yaml).get("mcp_servers", {})
    for name, server in servers.items():
        assert f"{name}.*: MCP {server['transport']}" in done.stdout
    named = {
        variable
        for server in servers.values()
        for variable in [*server.get("pass_env", []), *server.get("headers_from_env", {}).values()]
    }
    assert named <= {e["name"] for e in tools.get("env", [])}


@pytest.mark.engine
@pytest.mark.timeout(1200)  # its own engine: ~35 s alone, several minutes on a crowded machine
def test_the_rendered_pod_drains_without_losing_a_request(tiny_model: Path, tmp_path: Path) -> None:
    """The pod's two processes as the operator renders them (the CPU demo's command lines, its
    tools.yaml and its environment; only the model path, ports and cache directories are local),
    then what the kubelet does at termination: SIGTERM to the runtime while a request's tool call
    runs. The runtime must stop being ready at once, finish the request with its tool result, and
    exit; the sidecar, a native sidecar in the pod, is stopped only after that.

    The runtime runs as the pod runs it, with a read-only root filesystem and a writable /tmp
    (the emptyDir), in a private mount namespace (this needs root, as the test machine is).
    """
    sample = next(s for s in SAMPLES if s.stem.endswith("cpu-demo"))
    obj = yaml.safe_load(sample.read_text())
    obj["spec"]["engine"]["drainSeconds"] = 30
    runtime, tools, tools_yaml = containers_of(obj)
    config = tmp_path / "tools.yaml"
    config.write_text(tools_yaml)
    sidecar_port, http_port = free_port(), free_port()
    local = {
        "/etc/conveyor/tools.yaml": str(config),
        "8001": str(sidecar_port),
        "http://127.0.0.1:8001": f"http://127.0.0.1:{sidecar_port}",
        "8000": str(http_port),
        "0.0.0.0": "127.0.0.1",
        "/opt/conveyor/models/tiny": str(tiny_model),
    }
    env = {**os.environ}
    for var in runtime["env"]:
        value = var["value"].replace("/var/cache/conveyor", str(tmp_path / "cache"))
        env[var["name"]] = value.replace("/tmp", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    sidecar = subprocess.Popen(
        [sys.executable, "-m", "conveyor.tools.cli", *[local.get(a, a) for a in tools["args"]]]
    )
    server = None
    try:
        wait_http(f"http://127.0.0.1:{sidecar_port}/readyz", sidecar, 60)
        args = [local.get(a, a) for a in runtime["args"]]
        assert args[args.index("--drain-seconds") + 1] == "30"
        # The probe writes at the root, not in the checkout: that may be under the writable /tmp.
        refused = subprocess.run(
            [*READ_ONLY_ROOT, "touch", "/conveyor-ro-probe"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert "Read-only file system" in refused.stderr, refused.stderr
        server = subprocess.Popen(
            [
                *READ_ONLY_ROOT,
                sys.executable,
                "-m",
                "conveyor.runtime.cli",
                *args,
                "--allow-replay",
            ],
            env=env,
        )
        base = f"http://127.0.0.1:{http_port}"
        wait_http(f"{base}/ready", server, 900)

        code = "import time\ntime.sleep(3)\nprint('drained', 6 * 7)\n"
        body = {
            "model": "tiny",
            "messages": [{"role": "user", "content": "go"}],
            "stream": True,
            "conveyor": {"replay": [_hermes_call("python", {"code": code}), "done"]},
        }
        lines: list[str] = []
        with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=120) as resp:
            stream = resp.iter_lines()
            for line in stream:
                lines.append(line)
                if '"event":"tool_call"' in line:
                    break
            server.send_signal(signal.SIGTERM)  # the tool is running now
            assert not _ready(base), "still ready after SIGTERM"
            lines += list(stream)
        text = "\n".join(lines)
        assert "drained 42" in text, text[-2000:]
        assert [line for line in lines if line][-1] == "data: [DONE]"
        assert server.wait(timeout=120) == 0
        assert sidecar.poll() is None  # the sidecar outlived the runtime
    finally:
        for process in (server, sidecar):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(30)


def _ready(base: str) -> bool:
    """Whether /ready answers 200 within a few tries (the signal needs a moment to land)."""
    for _ in range(20):
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code != 200:
                return False
        except httpx.HTTPError:
            return False
        time.sleep(0.1)
    return True


# The pod's root filesystem: read-only, but for /tmp (an emptyDir in the pod; here it also holds
# the test's cache directory and model). The runtime execs in place, so signals reach it.
READ_ONLY_ROOT = [
    "unshare", "--mount", "--propagation", "private", "sh", "-c",
    'mount --bind /tmp /tmp && mount -o remount,bind,ro / && exec "$@"', "sh",
]  # fmt: skip


def _hermes_call(name: str, arguments: dict) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"
