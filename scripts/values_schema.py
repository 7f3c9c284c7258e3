"""Generate a chart's values.schema.json from its values.yaml, so the two cannot drift apart.

Types come from the default values; each key's `# --` comment becomes its description (a key
without one is an error: values.yaml is documented line by line); `# @schema key: value` lines add
JSON-schema keywords such as `enum`, `minimum` or `pattern`. An object annotated with
`additionalProperties` is a free-form map: its keys are not documented one by one.
Objects reject unknown keys and require their keys, so a typo or a nulled key fails `helm install`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CHART = Path(__file__).resolve().parent.parent / "charts" / "conveyor"
KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(?:\s|$)")
SCHEMA_DIALECT = "http://json-schema.org/draft-07/schema#"

Path_ = tuple[str, ...]


@dataclass
class KeyDoc:
    """What the comment block above one key says about it."""

    description: str = ""
    schema: dict[str, Any] = field(default_factory=dict)


class SchemaError(ValueError):
    """values.yaml cannot be turned into a schema (undocumented key, bad annotation)."""


def read_comments(text: str) -> dict[Path_, KeyDoc]:
    """Map each key path of a block-style YAML document to the comment block just above it."""
    docs: dict[Path_, KeyDoc] = {}
    stack: list[tuple[int, str]] = []
    pending: KeyDoc | None = None
    in_description = False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            pending, in_description = None, False
            continue
        if stripped.startswith("#"):
            body = stripped[1:].strip()
            if body.startswith("--"):
                pending = KeyDoc(description=body[2:].strip())
                in_description = True
            elif body.startswith("@schema"):
                if pending is None:
                    raise SchemaError(f"line {number}: `# @schema` without a `# --` comment above")
                annotation = yaml.safe_load(body[len("@schema") :])
                if not isinstance(annotation, dict):
                    raise SchemaError(f"line {number}: `# @schema` needs `keyword: value`")
                pending.schema.update(annotation)
                in_description = False
            elif pending is not None and in_description:
                pending.description = f"{pending.description} {body}".strip()
            continue
        match = KEY_LINE.match(line)
        if match is None:
            continue  # a list item or a flow continuation: no key of its own
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        if pending is not None:
            docs[tuple(key for _, key in stack)] = pending
        pending, in_description = None, False
    return docs


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    raise SchemaError(f"no JSON-schema type for default {value!r}")


def schema_for(value: Any, path: Path_, docs: dict[Path_, KeyDoc]) -> dict[str, Any]:
    """The schema of one value: its inferred type, its description, its annotations."""
    doc = docs.get(path)
    if path and doc is None:
        raise SchemaError(f"`{'.'.join(path)}` has no `# --` comment in values.yaml")
    node: dict[str, Any] = {"type": _type_of(value)}
    if doc is not None and doc.description:
        node["description"] = doc.description
    annotations = dict(doc.schema) if doc is not None else {}
    if isinstance(value, dict) and "additionalProperties" not in annotations:
        node["additionalProperties"] = False
        node["properties"] = {
            str(key): schema_for(child, (*path, str(key)), docs) for key, child in value.items()
        }
        node["required"] = [str(key) for key in value]
    node.update(annotations)
    return node


def generate(values_text: str) -> dict[str, Any]:
    values = yaml.safe_load(values_text)
    if not isinstance(values, dict):
        raise SchemaError("values.yaml must be a mapping")
    root = schema_for(values, (), read_comments(values_text))
    return {"$schema": SCHEMA_DIALECT, "title": "Values of the conveyor Helm chart", **root}


def render(values_text: str) -> str:
    return json.dumps(generate(values_text), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chart", type=Path, default=DEFAULT_CHART)
    parser.add_argument("--check", action="store_true", help="fail when the schema is stale")
    args = parser.parse_args(argv)
    values_path: Path = args.chart / "values.yaml"
    schema_path: Path = args.chart / "values.schema.json"
    try:
        wanted = render(values_path.read_text())
    except SchemaError as exc:
        print(f"{values_path}: {exc}", file=sys.stderr)
        return 1
    if args.check:
        if not schema_path.exists() or schema_path.read_text() != wanted:
            print(f"{schema_path} is stale: run `python scripts/values_schema.py`", file=sys.stderr)
            return 1
        return 0
    schema_path.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
