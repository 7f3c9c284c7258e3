"""The tool sidecar: runs tool invocations in isolated worker processes behind a websocket.

Public surface: :class:`Sidecar` (configured service), :func:`create_app` (its starlette app),
:func:`load_config` / :class:`ConfigError` (``tools.yaml``), and ``PROTOCOL``.
"""

from conveyor.tools.protocol import PROTOCOL
from conveyor.tools.sidecar.config import ConfigError, SidecarConfig, load_config

__all__ = ["PROTOCOL", "ConfigError", "SidecarConfig", "load_config"]
