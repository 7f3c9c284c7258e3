"""The Inference Extension's endpoint picker can schedule on a real `conveyor serve` (issue 19).

The extension's model-server protocol (docs/proposals/003-model-server-protocol in
kubernetes-sigs/gateway-api-inference-extension) names the vLLM series the EPP scrapes from the
pool's target port at /metrics; the KEDA ScaledObject queries two of ours. One scrape of the
session's running server must carry all of them, with the protocol's types and labels.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.engine

# name -> labels the EPP reads from it; all gauges (the protocol's type for each).
EPP_GAUGES = {
    "vllm:num_requests_waiting": set(),  # TotalQueuedRequests
    "vllm:num_requests_running": set(),  # TotalRunningRequests
    "vllm:kv_cache_usage_perc": set(),  # KVCacheUtilization
    "vllm:cache_config_info": {"block_size", "num_gpu_blocks"},  # prefix-cache scorer (optional)
}
# What render/keda.py queries.
KEDA_SERIES = {"vllm:num_requests_waiting", "conveyor_sidecar_invocations_in_flight"}


def test_the_endpoint_picker_finds_its_metrics_in_a_real_scrape(conveyor_server: Any) -> None:
    text = httpx.get(f"{conveyor_server.base_url}/metrics", timeout=30).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, labels in EPP_GAUGES.items():
        # The parser strips an `_info` suffix from the family name of an info-style gauge.
        family = families.get(name) or families.get(name.removesuffix("_info"))
        assert family is not None, f"{name} is not exported"
        assert family.type in ("gauge", "info"), (name, family.type)
        assert family.samples, f"{name} has no sample"
        assert labels <= family.samples[0].labels.keys(), (name, family.samples[0].labels)
    sample_names = {s.name for f in families.values() for s in f.samples}
    assert KEDA_SERIES <= sample_names
