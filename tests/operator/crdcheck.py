"""What the API server does with a ConveyorService before storing it, done offline for tests.

No kube-apiserver runs here, so this module repeats its steps on the CRD's own schema:
structural defaulting, OpenAPI validation (with `jsonschema`; unknown fields refused as
`kubectl apply`'s strict field validation does; a key twice in a list of list-type map) and the
`x-kubernetes-validations` CEL rules, evaluated with cel-python (`celpy`). Not ours to ship: the
operator never imports it.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import celpy
import jsonschema

from conveyor.operator.crd import openapi_schema

Schema = dict[str, Any]


def apply_defaults(schema: Schema, value: Any) -> Any:
    """Fill `default`s top-down, as the API server does: a defaulted {} gets its own defaults."""
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                apply_defaults(sub, value[key])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in value:
                apply_defaults(extra, value[key])
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            apply_defaults(schema["items"], item)
    return value


def to_jsonschema(schema: Schema) -> Schema:
    """The CRD schema as a draft 2020-12 JSON schema with Kubernetes' extensions spelled out."""
    out: Schema = {}
    for key, value in schema.items():
        if key in ("properties",):
            out[key] = {k: to_jsonschema(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = to_jsonschema(value)
        elif key.startswith("x-kubernetes-") or key in ("default", "description", "format"):
            continue
        elif key == "exclusiveMinimum" and value is True:
            out["exclusiveMinimum"] = schema["minimum"]
        elif key == "minimum" and schema.get("exclusiveMinimum") is True:
            continue
        else:
            out[key] = value
    if schema.get("x-kubernetes-int-or-string"):
        pattern = out.pop("pattern", None)
        string: Schema = {"type": "string", **({"pattern": pattern} if pattern else {})}
        out["anyOf"] = [{"type": "integer"}, string]
    if schema.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    preserve = schema.get("x-kubernetes-preserve-unknown-fields")
    if schema.get("type") == "object" and "properties" in schema and not preserve:
        out["additionalProperties"] = False
    return out


_ENV = celpy.Environment()


def cel_rules(schema: Schema) -> list[str]:
    """Every CEL rule in the schema, depth first."""
    found = [r["rule"] for r in schema.get("x-kubernetes-validations", [])]
    for sub in schema.get("properties", {}).values():
        found += cel_rules(sub)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            found += cel_rules(schema[key])
    return found


def evaluate_rule(rule: str, value: Any) -> bool:
    program = _ENV.program(_ENV.compile(rule))
    result = program.evaluate({"self": celpy.json_to_cel(value)})
    if isinstance(result, celpy.CELEvalError):
        raise result
    return bool(result)


def cel_errors(schema: Schema, value: Any, path: str = "") -> list[str]:
    errors = []
    for rule in schema.get("x-kubernetes-validations", []):
        if not evaluate_rule(rule["rule"], value):
            errors.append(f"{path or '<root>'}: {rule['message']}")
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                errors += cel_errors(sub, value[key], f"{path}.{key}" if path else key)
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += cel_errors(schema["items"], item, f"{path}[{i}]")
    return errors


def list_map_errors(schema: Schema, value: Any, path: str = "") -> list[str]:
    """A list of `x-kubernetes-list-type: map` holds each key once (the API server's rule)."""
    errors = []
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                errors += list_map_errors(sub, value[key], f"{path}.{key}" if path else key)
    elif isinstance(value, list) and "items" in schema:
        keys = schema.get("x-kubernetes-list-map-keys", [])
        seen = set()
        for i, item in enumerate(value):
            if schema.get("x-kubernetes-list-type") == "map":
                key = json.dumps({k: item.get(k) for k in keys}, sort_keys=True)
                if key in seen:
                    errors.append(f"{path}[{i}]: Duplicate value: {key}")
                seen.add(key)
            errors += list_map_errors(schema["items"], item, f"{path}[{i}]")
    return errors


def _path(parts: Any) -> str:
    """`spec.tools.mcpServers[0].name`, as the API server writes a field's path."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out or "<root>"


def admit(obj: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The object as the API server would store it, and the errors it would answer with."""
    schema = openapi_schema()
    obj = apply_defaults(schema, copy.deepcopy(obj))
    validator = jsonschema.Draft202012Validator(to_jsonschema(schema))
    errors = [
        f"{_path(e.absolute_path)}: {e.message}"
        for e in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
    ]
    errors += list_map_errors(schema, obj)
    if errors:  # the API server runs CEL only on well-typed values
        return obj, errors
    return obj, cel_errors(schema, obj)
