"""Which CPU cores the engine gets and which the tools get, on the CPU build of vLLM."""

from __future__ import annotations

import logging
import os

from conveyor.runtime.engine import cpu_build

log = logging.getLogger(__name__)


def core_split(sidecar_cpus: set[int] | None = None) -> tuple[list[int], set[int]] | None:
    """Engine cores and tool cores for this process's CPUs: the tools get ``sidecar_cpus`` or
    the last core, the engine the rest. None when there is only one core."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    tools = sidecar_cpus or {cores[-1]}
    return [c for c in cores if c not in tools] or cores[:-1], tools


def split_cores(sidecar_cpus: set[int] | None) -> set[int] | None:
    """On the CPU build, keep vLLM's threads and the tools on different cores.

    vLLM's CPU threads spin on every core they are given; a sidecar sharing those cores waits
    seconds for a time slice, and partial execution loses its point. Unless told otherwise,
    the engine takes all cores but the last and the embedded sidecar the last one.
    """
    split = core_split(sidecar_cpus)
    if not cpu_build() or split is None or "VLLM_CPU_OMP_THREADS_BIND" in os.environ:
        return sidecar_cpus
    engine, tools = split
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(map(str, engine))
    log.info("CPU build: engine threads on core(s) %s, tools on %s", engine, sorted(tools))
    return tools


def parse_cpus(text: str | None) -> set[int] | None:
    if not text:
        return None
    cpus: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus
