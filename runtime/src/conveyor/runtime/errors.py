"""The three kinds of error, mapped to OpenAI-format HTTP responses in one place.

Every error body has OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``:
``param`` names the request field at fault (or is null), ``code`` is a short machine-readable
reason such as ``context_length_exceeded`` (or null).
"""

from __future__ import annotations

from typing import Any


class ConveyorError(Exception):
    status = 500
    type = "internal_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": str(self),
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class BadRequest(ConveyorError):
    """The client sent something we cannot serve."""

    status = 400
    type = "invalid_request_error"


class NotFound(ConveyorError):
    """An unknown model or path."""

    status = 404
    type = "not_found_error"


class HttpError(ConveyorError):
    """A plain HTTP refusal (wrong method, body too large) with its own status."""

    type = "invalid_request_error"

    def __init__(self, status: int, message: str, *, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.status = status


class NotReady(ConveyorError):
    """The engine or the sidecar is not (yet, or any longer) available."""

    status = 503
    type = "service_unavailable"


class EngineDead(ConveyorError):
    """The engine failed; the request cannot complete."""

    status = 500
    type = "engine_error"


def _context_code(message: str) -> str | None:
    return "context_length_exceeded" if "maximum context length" in message else None


def from_exception(error: BaseException) -> ConveyorError:
    """Map any exception raised while serving a request to one of the kinds above."""
    if isinstance(error, ConveyorError):
        return error
    from vllm.exceptions import VLLMClientError, VLLMNotFoundError, VLLMValidationError
    from vllm.v1.engine.exceptions import EngineDeadError, EngineGenerateError

    if isinstance(error, EngineDeadError | EngineGenerateError):
        return EngineDead(f"the engine failed: {error!r}")
    if isinstance(error, VLLMValidationError):
        message = error.args[0] if error.args else str(error)
        return BadRequest(message, param=error.parameter, code=_context_code(message))
    if isinstance(error, VLLMNotFoundError):
        return NotFound(str(error))
    if isinstance(error, VLLMClientError):
        return BadRequest(str(error))
    if isinstance(error, ValueError | OverflowError):
        # vLLM rejects prompts and parameters it cannot serve with ValueError.
        return BadRequest(str(error), code=_context_code(str(error)))
    return ConveyorError(f"internal error: {error!r}")
