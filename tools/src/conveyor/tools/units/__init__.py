"""Units and segmenters: how a tool call's argument text is cut into pieces a tool can act on.

Every segmenter has ``feed(text) -> list[Unit]``, ``close() -> list[Unit]`` and ``spec()``,
and returns every unit from the very ``feed`` whose text completes it.
"""

from conveyor.tools.units._code import CodeStatements
from conveyor.tools.units._codec import segmenter_from_spec, unit_from_json, unit_to_json
from conveyor.tools.units._field_text import FieldText, code_field, plan_field
from conveyor.tools.units._json_fields import JsonFields
from conveyor.tools.units._plan import PlanSteps, parse_step
from conveyor.tools.units._types import (
    Field,
    FieldDelta,
    ParseError,
    Path,
    Ref,
    Segmenter,
    Statement,
    Step,
    Unit,
    Whole,
)
from conveyor.tools.units._whole import WholeArguments

__all__ = [
    "CodeStatements",
    "Field",
    "FieldDelta",
    "FieldText",
    "JsonFields",
    "ParseError",
    "Path",
    "PlanSteps",
    "Ref",
    "Segmenter",
    "Statement",
    "Step",
    "Unit",
    "Whole",
    "WholeArguments",
    "code_field",
    "parse_step",
    "plan_field",
    "segmenter_from_spec",
    "unit_from_json",
    "unit_to_json",
]
