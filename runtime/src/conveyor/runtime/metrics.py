"""Conveyor's Prometheus metrics (DESIGN.md's table), on the process-wide registry.

vLLM registers its ``vllm:*`` metrics on the same default registry, so one ``/metrics`` serves both.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)
_TOOL_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)

REQUEST_DURATION = Histogram(
    "conveyor_request_duration_seconds",
    "Request completion latency, tools included.",
    ["mode"],
    buckets=_LATENCY_BUCKETS,
)
TOOL_CALLS = Counter(
    "conveyor_tool_calls_total",
    "Hosted tool calls by outcome (ok, error, rejected, cancelled).",
    ["tool", "outcome"],
)
TOOL_EXECUTION = Histogram(
    "conveyor_tool_execution_seconds",
    "Time a tool was busy during one call.",
    ["tool"],
    buckets=_TOOL_BUCKETS,
)
TOOL_OVERLAP = Histogram(
    "conveyor_tool_overlap_seconds",
    "Tool busy time that ran while the model was still decoding.",
    ["tool"],
    buckets=_TOOL_BUCKETS,
)
TOOL_EXPOSED = Histogram(
    "conveyor_tool_exposed_seconds",
    "Time a request waited on a tool after decoding stopped.",
    ["tool"],
    buckets=_TOOL_BUCKETS,
)
TOOL_UNITS = Counter("conveyor_tool_units_total", "Units dispatched to tools.", ["tool"])
EARLY_ABORTS = Counter(
    "conveyor_early_aborts_total", "Decodes stopped early by a tool's rejection.", ["tool"]
)
TOKENS_SAVED = Counter(
    "conveyor_decode_tokens_saved_total",
    "Decode budget left unused by early aborts: per aborted round, its token limit (max_tokens, "
    "or a replayed text's length) minus the tokens decoded; an upper bound for live models.",
)
