"""values.schema.json is generated from values.yaml, and helm uses it to refuse bad values."""

from __future__ import annotations

import json
import subprocess

import chart
import pytest
import values_schema
import yaml


def test_schema_is_generated_from_the_current_values() -> None:
    text = (chart.CHART / "values.yaml").read_text()
    assert (chart.CHART / "values.schema.json").read_text() == values_schema.render(text)


def test_every_key_is_described() -> None:
    schema = json.loads((chart.CHART / "values.schema.json").read_text())

    def walk(node: dict, path: str) -> None:
        for key, child in node.get("properties", {}).items():
            assert child.get("description"), f"{path}{key} has no description"
            walk(child, f"{path}{key}.")

    walk(schema, "")


def test_an_undocumented_key_is_an_error() -> None:
    text = "# -- documented\na: 1\nb: 2\n"
    with pytest.raises(values_schema.SchemaError, match="`b` has no `# --` comment"):
        values_schema.generate(text)


def test_annotations_and_multi_line_descriptions() -> None:
    text = (
        "# -- The policy,\n# over two lines.\n# @schema enum: [A, B]\npolicy: A\n"
        "# -- Free-form.\n# @schema additionalProperties: {type: string}\nlabels:\n  x: y\n"
    )
    schema = values_schema.generate(text)
    assert schema["properties"]["policy"] == {
        "type": "string",
        "description": "The policy, over two lines.",
        "enum": ["A", "B"],
    }
    assert "properties" not in schema["properties"]["labels"]
    assert schema["required"] == ["policy", "labels"]


def test_default_values_satisfy_the_schema() -> None:
    import jsonschema

    schema = json.loads((chart.CHART / "values.schema.json").read_text())
    values = yaml.safe_load((chart.CHART / "values.yaml").read_text())
    jsonschema.Draft7Validator(schema).validate(values)


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("operator.imagePullPolicy=Sometimes", "imagePullPolicy"),
        ("operator.replicas=0", "replicas"),
        ("operator.replica=2", "replica"),
        ("operator.livenessPort=80", "livenessPort"),
        ("operator.livenessPort=http", "livenessPort"),
        ("operator.watchNamespace=Not_A_Namespace", "watchNamespace"),
        ("operator.logLevel=verbose", "logLevel"),
        ("images.registry=", "registry"),
        ("dashboards.label=", "label"),
        ("prometheusRule.thresholds.engineDownFor=soon", "engineDownFor"),
        ("prometheusRule.thresholds.exposedToolTimeRatio=2", "exposedToolTimeRatio"),
        ("rbac.create=maybe", "create"),
        ("operator.podAnnotations.a=null", "podAnnotations"),
        ("images=null", "images"),
    ],
)
def test_helm_refuses_bad_values(helm_binary: object, setting: str, complaint: str) -> None:
    args = [str(chart.HELM), "template", "x", str(chart.CHART), "--set", setting]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0, f"helm accepted {setting}"
    assert "values don't meet the specifications of the schema" in result.stderr
    assert complaint in result.stderr
