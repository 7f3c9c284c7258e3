"""The three kinds of error, mapped to OpenAI-format HTTP responses in one place."""

from __future__ import annotations

from typing import Any


class ConveyorError(Exception):
    status = 500
    type = "internal_error"

    def body(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": self.type, "code": self.status}}


class BadRequest(ConveyorError):
    """The client sent something we cannot serve."""

    status = 400
    type = "invalid_request_error"


class NotReady(ConveyorError):
    """The engine or the sidecar is not (yet, or any longer) available."""

    status = 503
    type = "service_unavailable"


class EngineDead(ConveyorError):
    """The engine failed; the request cannot complete."""

    status = 500
    type = "engine_error"


def from_exception(error: BaseException) -> ConveyorError:
    """Map any exception raised while serving a request to one of the kinds above."""
    if isinstance(error, ConveyorError):
        return error
    from vllm.v1.engine.exceptions import EngineDeadError, EngineGenerateError

    if isinstance(error, EngineDeadError | EngineGenerateError):
        return EngineDead(f"the engine failed: {error!r}")
    if isinstance(error, ValueError):
        # vLLM rejects prompts it cannot serve (too long, bad parameters) with ValueError.
        return BadRequest(str(error))
    return ConveyorError(f"internal error: {error!r}")
