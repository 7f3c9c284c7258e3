"""What the operator renders, the runtime and the sidecar accept.

The operator stands alone (it imports neither package), so only a test that holds all three can
check that the command lines it writes into a Deployment are ones the real CLIs take.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conveyor.operator.render import render
from conveyor.runtime.cli import build_parser
from conveyor.runtime.engine import engine_overrides

SAMPLES = sorted(Path(__file__).parents[2].joinpath("manifests", "samples").glob("*.yaml"))


def containers(sample: Path) -> tuple[dict, dict, str]:
    children = render(yaml.safe_load(sample.read_text()))
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
