"""The chart starts the operator the way the operator's own CLI expects."""

from __future__ import annotations

from typing import Any

import pytest
from chart import only

from conveyor.operator.cli import build_parser

Objects = list[dict[str, Any]]


@pytest.mark.parametrize("values", ["default_objects", "all_features_objects"])
def test_deployment_args_parse_with_the_operator_cli(
    values: str, request: pytest.FixtureRequest
) -> None:
    rendered: Objects = request.getfixturevalue(values)
    container = only(rendered, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    args = build_parser().parse_args(container["args"])
    assert args.command == "run"
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert args.liveness_port == ports["liveness"]
    if values == "all_features_objects":
        assert args.namespace == ["models"]
        assert args.log_level == "debug"
    else:
        assert args.namespace is None
