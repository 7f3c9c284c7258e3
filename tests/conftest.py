"""Session-wide real parts: the tiny model, one vLLM engine, one running Conveyor server."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

# Small engine on a small machine; set before vLLM is imported anywhere.
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded default model, built fresh for this session (about 5 s)."""
    from conveyor.runtime.model import build_tiny

    return build_tiny(tmp_path_factory.mktemp("models") / "tiny")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def engine(tiny_model: Path) -> AsyncIterator[object]:
    """One real vLLM engine for the whole session (about 20-35 s to start on the CPU).

    Tests that use it run on the session event loop: ``pytest.mark.asyncio(loop_scope="session")``.
    """
    from conveyor.runtime.engine import Engine, EngineOptions

    engine = Engine.start(EngineOptions(model=str(tiny_model), max_model_len=4096))
    yield engine
    engine.shutdown()
