"""Fenced ```` ```python ```` blocks: each one is a call of the ``python`` tool."""

from __future__ import annotations

import re

from conveyor.tools.parsing._fenced import FencedParser


class CodeParser(FencedParser):
    name = "code"
    tool = "python"
    field = "code"
    opener = re.compile(r" {0,3}```[ \t]*(?:python3?|py)[ \t\r]*")
    opener_prefix = re.compile(
        r" {0,3}(?:`{0,3}|```[ \t]*(?:p|py|pyt|pyth|pytho|python|python3)?[ \t\r]*)"
    )
    closer = re.compile(r" {0,3}```")
    closer_prefix = re.compile(r" {0,3}`{0,2}")
