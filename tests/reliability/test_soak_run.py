"""A one-minute mixed soak with `conveyor soak --url` against the session's shared server:
nothing lost or hung, no 5xx, nothing left in flight. No timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conveyor.runtime.soak.mix import kinds

pytestmark = pytest.mark.engine


def test_a_short_mixed_soak_loses_nothing(conveyor_server, tmp_path) -> None:
    out = tmp_path / "soak.json"
    finished = subprocess.run(
        [sys.executable, "-m", "conveyor.runtime.cli", "soak", "--url", conveyor_server.base_url,
         "--minutes", "1", "--concurrency", "8", "--pid", str(conveyor_server.sidecar.process.pid),
         "--out", str(out)],
        capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    summary = json.loads(out.read_text())
    assert json.loads(finished.stdout) == summary
    print(json.dumps(summary, indent=1))
    assert summary["outcomes"]["lost"] == 0 and summary["outcomes"]["hung"] == 0, summary
    assert summary["outcomes"]["server_error"] == 0, summary["error_examples"]
    assert summary["after_run"] == {
        "conveyor_sidecar_invocations_in_flight": 0.0,
        "vllm:num_requests_running": 0.0,
    }
    # The shared server has no search backend: that kind alone is left out, and says why.
    assert set(summary["kinds_skipped"]) == {"tool:search"}
    sent = set(summary["requests"]["by_kind"])
    assert sent == {k.name for k in kinds()} - {"tool:search"}
    # Every process of the server was watched: the runtime's, the engine's, the sidecar's.
    start = summary["processes"]["start"]
    assert start["api"] and start["engine"] and start["sidecar"] and start["worker"]["count"]
