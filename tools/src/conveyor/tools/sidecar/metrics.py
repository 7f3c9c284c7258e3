"""The sidecar's Prometheus metrics (``conveyor_sidecar_*``), in a registry of their own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from conveyor.tools.protocol import LIMITS


class SidecarMetrics:
    def __init__(self, tools: list[str] | tuple[str, ...] = ()) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.in_flight = Gauge(
            "conveyor_sidecar_invocations_in_flight", "Invocations open now", ["tool"], registry=r
        )
        self.invocations = Counter(
            "conveyor_sidecar_invocations_total",
            "Invocations by outcome (result, reject, error, cancelled)",
            ["tool", "outcome"],
            registry=r,
        )
        self.units = Counter(
            "conveyor_sidecar_units_total", "Units forwarded to workers", ["tool"], registry=r
        )
        self.worker_starts = Counter(
            "conveyor_sidecar_worker_starts_total", "Worker processes started", registry=r
        )
        self.worker_start_failures = Counter(
            "conveyor_sidecar_worker_start_failures_total",
            "Worker processes that failed to start",
            registry=r,
        )
        self.worker_crashes = Counter(
            "conveyor_sidecar_worker_crashes_total",
            "Workers that died on their own (signal or exit) in the middle of an invocation",
            ["tool"],
            registry=r,
        )
        self.limit_kills = Counter(
            "conveyor_sidecar_limit_kills_total",
            "Workers ended by a limit (limit: cpu, memory, timeout, output)",
            ["tool", "limit"],
            registry=r,
        )
        self.cancelled_by_disconnect = Counter(
            "conveyor_sidecar_disconnect_cancels_total",
            "Invocations cancelled because their client disconnected",
            registry=r,
        )
        self.protocol_errors = Counter(
            "conveyor_sidecar_protocol_errors_total",
            "Frames refused for breaking the protocol",
            registry=r,
        )
        self.workers_ready = Gauge(
            "conveyor_sidecar_workers_ready", "Warm workers waiting in the pool", registry=r
        )
        self.workers_alive = Gauge(
            "conveyor_sidecar_workers_alive", "Worker processes alive (ready or busy)", registry=r
        )
        self.sessions = Gauge(
            "conveyor_sidecar_sessions_active", "Sessions holding a worker", registry=r
        )
        self.connections = Gauge(
            "conveyor_sidecar_connections", "Websocket connections open now", registry=r
        )
        self.worker_start_seconds = Histogram(
            "conveyor_sidecar_worker_start_seconds",
            "Time from spawning a worker to its ready message",
            buckets=(0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30),
            registry=r,
        )
        self.worker_wait_seconds = Histogram(
            "conveyor_sidecar_worker_wait_seconds",
            "Time an open waited for a worker (0 when the pool had one ready)",
            buckets=(0.0001, 0.001, 0.01, 0.1, 0.5, 1, 5, 30),
            registry=r,
        )
        self.track(tools)

    def track(self, tools: list[str] | tuple[str, ...]) -> None:
        """Create every series of ``tools`` at 0, so dashboards and alerts see them at once."""
        for tool in tools:
            self.in_flight.labels(tool=tool)
            self.units.labels(tool=tool)
            self.worker_crashes.labels(tool=tool)
            for limit in LIMITS:
                self.limit_kills.labels(tool=tool, limit=limit)
            for outcome in ("result", "reject", "error", "cancelled"):
                self.invocations.labels(tool=tool, outcome=outcome)
