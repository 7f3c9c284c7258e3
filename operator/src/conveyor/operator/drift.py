"""Drift: whether a child in the cluster still holds the whole desired state the operator applies.

The API server adds defaults and other controllers add fields, so "equal" is too strict: a child
has drifted when some value the operator renders is missing or different. That alone cannot see
a field the operator stopped rendering (a nodeSelector removed from the spec stays on the
Deployment), so every child carries a fingerprint of the whole desired state it was applied with:
any change of the desired state, removals included, changes the fingerprint, the child drifts,
and the server-side apply of the whole desired state removes what is no longer in it.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

FINGERPRINT = "conveyor.dev/desired-state"


def fingerprinted(child: dict[str, Any]) -> dict[str, Any]:
    """The child with the fingerprint of its desired state in an annotation."""
    digest = hashlib.sha256(json.dumps(child, sort_keys=True).encode()).hexdigest()[:32]
    out = copy.deepcopy(child)
    out["metadata"].setdefault("annotations", {})[FINGERPRINT] = digest
    return out


def drifted(desired: Any, actual: Any) -> bool:
    if isinstance(desired, dict):
        if not isinstance(actual, dict):
            return True
        return any(k not in actual or drifted(v, actual[k]) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(actual, list) or len(desired) != len(actual):
            return True
        return any(drifted(d, a) for d, a in zip(desired, actual, strict=True))
    return bool(desired != actual)
