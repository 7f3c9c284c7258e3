"""Drift: whether a child as it is in the cluster still holds everything the operator wants.

The API server adds defaults and other controllers add fields, so "equal" is too strict: a
child has drifted when some value the operator rendered is missing or different.
"""

from __future__ import annotations

from typing import Any


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
