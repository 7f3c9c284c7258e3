"""The tools ConfigMap: spec.tools turned into the sidecar's `tools.yaml`, and its checksum.

The checksum goes on the pod template, so a changed tool setting rolls the pods (a mounted
ConfigMap changes in place, but the sidecar reads it only at start).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import yaml

from conveyor.operator.render._meta import ConveyorService
from conveyor.operator.render.mcp import mcp_servers_document

CONFIG_FILE = "tools.yaml"
# The search tool exists to call its endpoint, so it always has the network.
_NETWORK_TOOLS = {"search"}


def tools_yaml_document(svc: ConveyorService) -> dict[str, Any]:
    """The `tools.yaml` document in the sidecar's own format (conveyor.tools.sidecar.config)."""
    tools = svc.spec.tools
    entries: dict[str, Any] = {}
    for name in tools.enabled:
        entry: dict[str, Any] = {"network": tools.sandbox.network or name in _NETWORK_TOOLS}
        if tools.config.get(name):
            entry["config"] = tools.config[name]
        entries[name] = entry
    doc: dict[str, Any] = {
        "tools": entries,
        "limits": {"wall_seconds": tools.sandbox.timeout_seconds},
    }
    if tools.mcp_servers:
        doc["mcp_servers"] = mcp_servers_document(svc)
    if tools.volume_mounts:
        # The sandbox shows a worker only the system directories, Python and what is exposed:
        # a stdio MCP server's program on a mounted volume must be exposed to be run.
        doc["isolation"] = {"expose_paths": [m["mountPath"] for m in tools.volume_mounts]}
    return doc


def config_map(svc: ConveyorService) -> dict[str, Any]:
    text = yaml.safe_dump(tools_yaml_document(svc), sort_keys=True)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": svc.metadata(svc.config_map_name, "tools"),
        "data": {CONFIG_FILE: text},
    }


def checksum(obj: dict[str, Any]) -> str:
    payload = json.dumps(obj.get("data", {}), sort_keys=True).encode()
    return hashlib.sha256(payload).hexdigest()
