"""The soak's verdict from records and samples, and the mix's checks, without a server."""

from __future__ import annotations

import json

from conveyor.runtime.soak import report
from conveyor.runtime.soak.mix import Answer, body_bytes, kinds
from conveyor.runtime.soak.processes import ProcessSample
from conveyor.runtime.soak.traffic import Record

KINDS = {k.name: k for k in kinds()}


def _summary(records, warm=None, end=None, after_run=None):
    return report.build(
        records,
        settings={},
        wall_seconds=180.0,
        skipped={},
        samples={"start": warm, "after_warmup": warm, "end": end},
        after_run=after_run or dict.fromkeys(report.LEAK_METRICS, 0.0),
    )


def _proc(pid, role, rss):
    return ProcessSample(pid, role, rss, 10, 2)


def test_a_clean_run_passes_with_latency_per_minute() -> None:
    records = [Record("plain", t, 0.1 * (1 + t // 60), "ok", 200) for t in range(180)]
    records.append(Record("disconnect", 5, 9.0, "disconnected"))
    summary = _summary(records, [_proc(1, "api", 100)], [_proc(1, "api", 104)])
    assert summary["passed"] and summary["failures"] == []
    assert summary["latency_seconds"]["first_minute"] == {"count": 60, "p50": 0.1, "p99": 0.1}
    assert summary["latency_seconds"]["last_minute"]["p50"] == 0.3
    assert summary["rss_growth_after_warmup_percent"] == {"api:1": 4.0}
    assert summary["requests"]["by_kind"] == {"disconnect": 1, "plain": 180}


def test_lost_hung_5xx_and_unexpected_fail_the_run() -> None:
    records = [
        Record("plain", 1, 1, "lost", detail="ReadError"),
        Record("plain", 2, 120, "hung"),
        Record("tool:python", 3, 1, "server_error", 500),
        Record("malformed", 4, 1, "unexpected", 200, "HTTP 200"),
    ]
    summary = _summary(records)
    assert not summary["passed"]
    assert summary["lost_or_hung"] == 2
    assert summary["errors_by_kind"] == {
        "plain": {"lost": 1, "hung": 1},
        "tool:python": {"server_error": 1},
        "malformed": {"unexpected": 1},
    }
    assert len(summary["failures"]) == 4


def test_memory_growth_an_exited_process_and_a_leak_fail_the_run() -> None:
    warm = [_proc(1, "engine", 1000), _proc(2, "sidecar", 50), _proc(3, "worker", 30)]
    end = [_proc(1, "engine", 1060), _proc(4, "sidecar", 50)]  # workers come and go freely
    summary = _summary(
        [Record("plain", 1, 1, "ok", 200)],
        warm,
        end,
        {"conveyor_sidecar_invocations_in_flight": 2.0, "vllm:num_requests_running": 0.0},
    )
    assert summary["failures"] == [
        "conveyor_sidecar_invocations_in_flight is 2 after the run",
        "engine:1 resident memory grew 6.0 % after the warm-up (limit 5 %)",
        "sidecar:2 exited during the run",
    ]


def test_checks_accept_the_expected_answer_and_refuse_others() -> None:
    python = KINDS["tool:python"]
    good = {
        "choices": [{"message": {"content": "done"}, "finish_reason": "stop"}],
        "conveyor": {"messages": [{"role": "tool", "content": "42\n"}]},
    }
    assert python.check(Answer(200, good)) is None
    bad = {**good, "conveyor": {"messages": [{"role": "tool", "content": "error: boom"}]}}
    assert "not 42" in python.check(Answer(200, bad))
    malformed = KINDS["malformed"]
    assert malformed.check(Answer(400, {"error": {"message": "messages: ..."}})) is None
    assert malformed.check(Answer(200, good)) is not None
    streamed = KINDS["streamed"]
    chunks = ({"choices": [{"finish_reason": "length"}]}, {"choices": [], "usage": {"x": 1}})
    assert streamed.check(Answer(200, None, chunks)) is None
    assert "error" in streamed.check(Answer(200, None, (*chunks, {"error": {"message": "x"}})))


def test_bodies_name_the_model_unless_malformed_bytes() -> None:
    assert json.loads(body_bytes({"messages": []}, "m"))["model"] == "m"
    assert body_bytes(b"{", "m") == b"{"
