"""Plan blocks: the lines between a ``>>>`` line and a ``<<<`` line are one ``planner`` call."""

from __future__ import annotations

import re

from conveyor.tools.parsing._fenced import FencedParser


class PlanParser(FencedParser):
    name = "plan"
    tool = "planner"
    field = "plan"
    opener = re.compile(r"[ \t]*>>>[ \t\r]*")
    opener_prefix = re.compile(r"[ \t]*(?:>{0,3}|>>>[ \t\r]*)")
    closer = re.compile(r"[ \t]*<<<")
    closer_prefix = re.compile(r"[ \t]*<{0,2}")
