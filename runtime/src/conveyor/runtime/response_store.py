"""Stored responses for ``previous_response_id`` and ``GET /v1/responses/{id}``: bounded, in memory.

A stored response keeps the response object and its whole conversation (the items before it,
its input and its output), so a response stays continuable as long as it itself is stored,
whatever happened to the ones before it. At most ``max_entries`` are kept (the least recently
stored go first) and none longer than ``ttl_seconds``. One process, no persistence: a restart
forgets every response, and a client then gets the 400 for an unknown id.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_ENTRIES = 1000
DEFAULT_TTL_SECONDS = 3600.0


@dataclass(frozen=True)
class Stored:
    response: dict[str, Any]
    conversation: list[dict[str, Any]]  # responses_request.Item, in order
    at: float


class ResponseStore:
    def __init__(
        self,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or ttl_seconds <= 0:
            raise ValueError("the response store needs max_entries >= 1 and ttl_seconds > 0")
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._entries: OrderedDict[str, Stored] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, response: dict[str, Any], conversation: list[dict[str, Any]]) -> None:
        self._expire()
        self._entries[response["id"]] = Stored(response, conversation, self._clock())
        self._entries.move_to_end(response["id"])
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def get(self, response_id: str) -> Stored | None:
        """The stored response, or None when unknown, expired or evicted."""
        self._expire()
        return self._entries.get(response_id)

    def _expire(self) -> None:
        deadline = self._clock() - self.ttl_seconds
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if oldest.at > deadline:
                break
            self._entries.popitem(last=False)
