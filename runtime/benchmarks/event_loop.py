"""Does the event loop stay free while a maximal request is served, and does memory come back?

Against a running `conveyor serve` (``--url``, and ``--pid`` for its memory), this sends maximal
requests one after another: a body just under the server's size limit (legal JSON whitespace
around a real chat request), one whose text is too long for the context (refused after
tokenizing), and one that really decodes. Meanwhile it asks ``/health`` as fast as it answers
and reports its latency (idle, and while the big requests run) and the server's resident memory
before, at its peak, and after.

    python runtime/benchmarks/event_loop.py --url http://127.0.0.1:8000 --pid $(pgrep -f ...)
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path

import httpx

LIMIT = 4 * 1024 * 1024


def rss_mib(pid: int | None) -> float | None:
    if pid is None:
        return None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def maximal_bodies(limit: int) -> dict[str, bytes]:
    decode = json.dumps(
        {
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 200,
            "ignore_eos": True,
            "conveyor": {"tools": []},
        }
    ).encode()
    long_text = json.dumps(
        {"messages": [{"role": "user", "content": "word " * ((limit - 200) // 5)}]}
    ).encode()
    return {
        "padded-and-decoding": decode[:-1] + b" " * (limit - len(decode) - 16) + b"}",
        "too-long-for-context": long_text,
    }


def poll_health(client: httpx.Client, stop: threading.Event, seen: list[float]) -> None:
    """Ask /health back to back until ``stop``; record each latency in ms."""
    while not stop.is_set():
        started = time.perf_counter()
        client.get("/health").raise_for_status()
        seen.append((time.perf_counter() - started) * 1000)


def summary(values: list[float]) -> str:
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    median = statistics.median(values)
    return f"n={len(values)} p50={median:.1f} ms p99={p99:.1f} ms max={values[-1]:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--pid", type=int, help="the server process, for its memory")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit", type=int, default=LIMIT, help="the server's --max-body-bytes")
    args = parser.parse_args()
    client = httpx.Client(base_url=args.url, timeout=300)
    before = rss_mib(args.pid)
    stop = threading.Event()
    idle: list[float] = []
    threading.Thread(target=poll_health, args=(client, stop, idle)).start()
    time.sleep(2)
    stop.set()
    time.sleep(0.2)
    peak = before or 0.0
    for name, body in maximal_bodies(args.limit).items():
        during: list[float] = []
        statuses = []
        stop = threading.Event()
        poller = threading.Thread(target=poll_health, args=(client, stop, during))
        poller.start()
        started = time.perf_counter()
        with httpx.Client(base_url=args.url, timeout=300) as big:
            for _ in range(args.rounds):
                statuses.append(big.post("/v1/chat/completions", content=body).status_code)
                peak = max(peak, rss_mib(args.pid) or 0.0)
        elapsed = time.perf_counter() - started
        stop.set()
        poller.join()
        print(f"{name}: {len(body)} bytes x{args.rounds}, statuses {statuses}, {elapsed:.1f} s")
        print(f"  /health while it ran: {summary(during)}")
    time.sleep(2)
    print(f"/health idle: {summary(idle)}")
    if args.pid:
        print(f"server RSS: before {before:.0f} MiB, peak {peak:.0f} MiB, "
              f"after {rss_mib(args.pid):.0f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
