"""Typed spec dataclasses → Kubernetes structural OpenAPI schema, and dict → dataclass loading.

The CRD's schema is derived from the spec dataclasses, never written by hand, so the types the
renderer reads and the schema the API server enforces cannot drift apart. A field's JSON name is
its Python name in camelCase; its constraints live in the field's metadata (see `prop`).
"""

from __future__ import annotations

import copy
import dataclasses
import types
from typing import Any, ClassVar, Protocol, Union, get_args, get_origin, get_type_hints

Schema = dict[str, Any]


class SpecType(Protocol):
    """A dataclass that may carry CEL rules: `__cel__ = [(rule, message), ...]`."""

    __dataclass_fields__: ClassVar[dict[str, Any]]


def prop(
    description: str,
    *,
    default: Any = dataclasses.MISSING,
    extra: Schema | None = None,
    **schema: Any,
) -> Any:
    """A spec field: its description, its default and extra schema keywords (minimum, enum...).

    `extra` holds keywords that are not Python names (`x-kubernetes-list-type`). A mutable
    default (dict, list, dataclass instance) is copied per instance.
    """
    meta = {"description": description, "schema": {**schema, **(extra or {})}}
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=meta)
    if isinstance(default, (dict, list)) or dataclasses.is_dataclass(default):
        template = default
        return dataclasses.field(
            default_factory=lambda: _copy(template), metadata={**meta, "template": template}
        )
    return dataclasses.field(default=default, metadata=meta)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _copy(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value)
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _doc(cls: type) -> str:
    return " ".join((cls.__doc__ or "").split())


def schema_of(cls: type) -> Schema:
    """The structural schema of a spec dataclass, with CEL rules from its `__cel__`."""
    hints = get_type_hints(cls)
    properties: dict[str, Schema] = {}
    required: list[str] = []
    for f in dataclasses.fields(cls):
        tp, _optional = _unwrap_optional(hints[f.name])
        # The field's description wins over its type's docstring; it says what this field is for.
        sub: Schema = {"description": f.metadata["description"]} if f.metadata else {}
        sub.update({k: v for k, v in _schema_of_type(tp).items() if k not in sub})
        # Copied: YAML would write a dict shared between fields as an anchor and an alias.
        sub.update(copy.deepcopy(f.metadata.get("schema", {})))
        if f.default is not dataclasses.MISSING and f.default is not None:
            sub["default"] = to_json(f.default)
        elif "template" in f.metadata:
            # An object defaults to {} and the API server then fills its own fields' defaults,
            # so CEL rules can read `self.engine.tensorParallelSize` without `has()` guards.
            template = f.metadata["template"]
            sub["default"] = {} if dataclasses.is_dataclass(template) else to_json(template)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(camel(f.name))
        properties[camel(f.name)] = sub
    schema: Schema = {"description": _doc(cls)} if _doc(cls) else {}
    schema["type"] = "object"
    if required:
        schema["required"] = required
    schema["properties"] = properties
    rules = getattr(cls, "__cel__", ())
    if rules:
        schema["x-kubernetes-validations"] = [{"rule": r, "message": m} for r, m in rules]
    return schema


def _schema_of_type(tp: Any) -> Schema:
    if dataclasses.is_dataclass(tp):
        return schema_of(tp)  # type: ignore[arg-type]
    if tp is str:
        return {"type": "string"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is Quantity:
        return {"x-kubernetes-int-or-string": True, "pattern": _QUANTITY}
    if tp is IntOrPercent:
        return {"x-kubernetes-int-or-string": True, "pattern": _PERCENT}
    origin = get_origin(tp)
    if origin is list:
        (item,) = get_args(tp)
        return {"type": "array", "items": _schema_of_type(item)}
    if origin is dict:
        key, value = get_args(tp)
        if key is not str:
            raise TypeError(f"map keys must be str, not {key!r}")
        if value is Any:
            return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        return {"type": "object", "additionalProperties": _schema_of_type(value)}
    if tp is Any:
        return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    raise TypeError(f"no schema for {tp!r}")


class Quantity(str):
    """A Kubernetes resource quantity ("500m", "16Gi", 2): an int or a string in the schema."""


class IntOrPercent(str):
    """A count or a percentage (1, "25%"), as a Deployment's maxSurge takes."""


_NUMBER = r"(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
_QUANTITY = rf"^(\+|-)?{_NUMBER}(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?{_NUMBER}))?$"
_PERCENT = r"^[0-9]+%$"


class SpecError(ValueError):
    """A spec the types cannot hold (the CRD schema normally refuses it first)."""


def load(cls: type[Any], data: Any, path: str = "spec") -> Any:
    """Build a spec dataclass from its JSON form, filling defaults; unknown keys are errors."""
    if not isinstance(data, dict):
        raise SpecError(f"{path} must be an object")
    hints = get_type_hints(cls)
    names = {camel(f.name): f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise SpecError(f"{path} has unknown fields: {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for key, f in names.items():
        if key in data and data[key] is not None:
            kwargs[f.name] = _load_value(hints[f.name], data[key], f"{path}.{key}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SpecError(f"{path}.{key} is required")
    return cls(**kwargs)


def _load_value(tp: Any, value: Any, path: str) -> Any:
    tp, _ = _unwrap_optional(tp)
    if dataclasses.is_dataclass(tp):
        return load(tp, value, path)  # type: ignore[arg-type]
    if tp in (Quantity, IntOrPercent):
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise SpecError(f"{path} must be an integer or a string")
        return tp(str(value))
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (str, int, float, bool):
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise SpecError(f"{path} must be {tp.__name__}")
        return value
    origin = get_origin(tp)
    if origin is list:
        if not isinstance(value, list):
            raise SpecError(f"{path} must be a list")
        (item,) = get_args(tp)
        return [_load_value(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise SpecError(f"{path} must be an object")
        _, vt = get_args(tp)
        if vt is Any:
            return value
        return {k: _load_value(vt, v, f"{path}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    raise TypeError(f"cannot load {tp!r}")


def to_json(value: Any) -> Any:
    """The JSON form of a spec value (camelCase keys, None fields left out)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if v is not None:
                out[camel(f.name)] = to_json(v)
        return out
    if isinstance(value, IntOrPercent):
        return int(value) if value.isdigit() else str(value)
    if isinstance(value, Quantity):
        return str(value)
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    return value


__all__ = [
    "IntOrPercent",
    "Quantity",
    "Schema",
    "SpecError",
    "camel",
    "load",
    "prop",
    "schema_of",
    "to_json",
]
