"""Streaming tool-call parsers: find tool calls, and their argument text, in a token stream.

``ToolCallStream(format)`` turns text deltas into ``Text``, ``CallStarted``,
``ArgumentsDelta``, ``CallFinished`` and ``CallMalformed`` events. For every format, the
``ArgumentsDelta`` texts of a call concatenate to the JSON text of its arguments object, so
they can be fed straight to the tool's segmenter.
"""

from conveyor.tools.parsing._base import FormatParser
from conveyor.tools.parsing._events import (
    ArgumentsDelta,
    CallFinished,
    CallMalformed,
    CallStarted,
    Event,
    Text,
)
from conveyor.tools.parsing._registry import formats, register_format
from conveyor.tools.parsing._stream import ToolCallStream, parse_all

__all__ = [
    "ArgumentsDelta",
    "CallFinished",
    "CallStarted",
    "Event",
    "FormatParser",
    "CallMalformed",
    "Text",
    "ToolCallStream",
    "formats",
    "parse_all",
    "register_format",
]
