"""Attacks as the model would send them: a replayed hosted call through the public API."""

from __future__ import annotations

import json
import os
import time
from typing import Any


def hosted(setup: Any, tool: str, arguments: dict[str, Any], allow: list[str] | None = None):
    """The result the hosted ``tool`` gave the model, as the response shows it."""
    call = json.dumps({"name": tool, "arguments": arguments})
    options: dict[str, Any] = {"replay": [f"<tool_call>\n{call}\n</tool_call>", "done"]}
    if allow is not None:
        options["tools"] = allow
    response = setup.client.chat.completions.create(
        model=setup.model,
        messages=[{"role": "user", "content": "go"}],
        max_tokens=64,
        extra_body={"conveyor": options},
    )
    messages = response.model_extra["conveyor"]["messages"]
    results = [m["content"] for m in messages if m["role"] == "tool"]
    assert len(results) == 1, messages
    return results[0]


def python(setup: Any, code: str) -> str:
    return hosted(setup, "python", {"code": code})


def processes_named(name: str) -> list[int]:
    """Host pids whose command name is ``name`` (as a process sets it with PR_SET_NAME)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() == name:
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


def gone(name: str, within: float = 10.0) -> bool:
    """Whether no host process is named ``name`` (waiting up to ``within`` s for it to end)."""
    deadline = time.monotonic() + within
    while processes_named(name):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


# Sets the calling process's command name, so the host can find what a call left behind.
NAME_ITSELF = (
    "import ctypes\ndef name_itself(n):\n    ctypes.CDLL(None).prctl(15, n.encode(), 0, 0, 0)\n"
)
