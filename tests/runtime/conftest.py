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
