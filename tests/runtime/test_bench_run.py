"""`conveyor bench` end to end, as a process: one small run of all three systems.

The run starts `conveyor serve` and vLLM's own server side by side (about 30 s each), runs an
early-abort workload and a search workload twice per system in random order, and a short
open-loop load; it checks what the issue asks of every run: equal tokens, an ideal bound at
or below every system, intervals in the JSON, expect enforced, the load curves drawn.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

# Two engines start side by side: minutes on a busy 2-core machine.
pytestmark = [pytest.mark.engine, pytest.mark.timeout(1500)]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> tuple[dict, str, Path]:
    out = tmp_path_factory.mktemp("bench")
    command = [
        sys.executable, "-m", "conveyor.runtime.cli", "bench", "--model", str(tiny_model),
        "--out", str(out), "--workloads", "validation,search", "--reps", "2", "--bound-reps", "1",
        "--search-latency", "0.2", "--load", "--load-rates", "2", "--load-seconds", "2",
    ]  # fmt: skip
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        stdout, stderr = process.communicate(timeout=1400)
    except BaseException:
        process.send_signal(signal.SIGINT)  # the bench stops its servers on an interrupt
        process.communicate(timeout=120)
        raise
    assert process.returncode == 0, stdout[-3000:] + stderr[-3000:]
    return json.loads((out / "bench.json").read_text()), stdout, out


def test_every_system_decodes_the_same_tokens(run: tuple[dict, str, Path]) -> None:
    result, _, _ = run
    for name, w in result["workloads"].items():
        assert w["tokens"]["errors"] == [], name
        counts = {
            s: {r["completion_tokens"] for r in data["runs"]} for s, data in w["systems"].items()
        }
        assert len(counts) == 3 and all(
            not r["error"] for d in w["systems"].values() for r in d["runs"]
        )
        if name == "search":
            assert len(set.union(*counts.values())) == 1, counts
    validation = result["workloads"]["validation"]
    # Partial stops at the reject; the tokens it did not decode are reported. Sequential runs the
    # one-field call once it is closed, still inside the turn, so it may abort too: reported.
    not_decoded = validation["tokens"]["not_decoded"]
    assert min(not_decoded["conveyor-partial"]) > 0
    assert len(not_decoded["conveyor-sequential"]) == 2
    assert validation["derived"]["abort_skipped_fraction"]["value"] > 0


def test_the_ideal_is_a_lower_bound_in_every_repetition(run: tuple[dict, str, Path]) -> None:
    result, stdout, out = run
    for name, w in result["workloads"].items():
        assert w["bound"]["errors"] == [], name
        for i, bound in enumerate(w["bound"]["reps"]):
            for system, data in w["systems"].items():
                assert bound["latency"] <= data["runs"][i]["latency"], (name, system, i)
        latency = w["systems"]["conveyor-partial"]["summary"]["latency"]
        low, high = latency["ci95"]
        assert low <= latency["median"] <= high
    assert "ideal (s)" in stdout and "emulated" in stdout and "core" in stdout
    assert result["command"].startswith("conveyor bench") and "--load" in result["command"]
    assert (out / "bench.png").stat().st_size > 0


def test_the_load_curves(run: tuple[dict, str, Path]) -> None:
    result, _, out = run
    load = result["load"]
    assert set(load["curves"]) == {"conveyor-partial", "conveyor-sequential", "vllm-client-loop"}
    for points in load["curves"].values():
        assert points[0]["rate"] == 2 and points[0]["completed"] > 0
    assert (out / "load.png").stat().st_size > 0
