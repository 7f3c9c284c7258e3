"""The tool protocol, one module for both ends: the websocket frames between the runtime and the
sidecar (:mod:`.wire`), the messages between the sidecar and its workers (:mod:`.worker`), and
every error reason (:class:`Reason`)."""

from conveyor.tools.protocol.reasons import LIMITS, Reason
from conveyor.tools.protocol.wire import (
    CLIENT_FRAMES,
    MAX_ID_LENGTH,
    PROTOCOL,
    SERVER_FRAMES,
    SUBPROTOCOL,
    Cancel,
    ClientFrame,
    EndSession,
    ErrorFrame,
    Finish,
    Open,
    ProtocolError,
    RejectFrame,
    ResultFrame,
    ServerFrame,
    Timing,
    UnitFrame,
    decode_client_frame,
    decode_server_frame,
    encode,
)

__all__ = [
    "CLIENT_FRAMES",
    "LIMITS",
    "MAX_ID_LENGTH",
    "PROTOCOL",
    "SERVER_FRAMES",
    "SUBPROTOCOL",
    "Cancel",
    "ClientFrame",
    "EndSession",
    "ErrorFrame",
    "Finish",
    "Open",
    "ProtocolError",
    "Reason",
    "RejectFrame",
    "ResultFrame",
    "ServerFrame",
    "Timing",
    "UnitFrame",
    "decode_client_frame",
    "decode_server_frame",
    "encode",
]
