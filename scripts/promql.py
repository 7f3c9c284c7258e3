"""A light PromQL check and metric-name extraction, for the dashboards and the alert rules.

Not a PromQL parser: it tokenizes an expression and checks what typos usually break — balanced
brackets, known function names, well-formed label matchers and range durations — and lists the
metric names the expression reads, so a test can compare them with a real `/metrics` page.
Grafana's template variables (`$namespace`, `${tool}`, `$__rate_interval`) are accepted where
Grafana substitutes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FUNCTIONS = frozenset(
    """
    abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes clamp
    clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year days_in_month
    deg delta deriv double_exponential_smoothing exp floor histogram_avg histogram_count
    histogram_fraction histogram_quantile histogram_stddev histogram_stdvar histogram_sum
    hour idelta increase info irate label_join label_replace last_over_time ln log10 log2
    mad_over_time max_over_time min_over_time minute month pi predict_linear present_over_time
    quantile_over_time rad rate resets round scalar sgn sin sinh sort sort_by_label
    sort_by_label_desc sort_desc sqrt stddev_over_time stdvar_over_time sum_over_time tan tanh time
    timestamp vector year
    """.split()
)
AGGREGATIONS = frozenset(
    "sum avg min max count group stddev stdvar topk bottomk quantile count_values limitk"
    " limit_ratio".split()
)
# Words that take a parenthesised list of label names.
LABEL_LIST_KEYWORDS = frozenset("by without on ignoring group_left group_right".split())
KEYWORDS = LABEL_LIST_KEYWORDS | frozenset("and or unless bool offset Inf NaN inf nan".split())
MATCHER_OPS = frozenset({"=", "!=", "=~", "!~"})

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<var>\$\{[A-Za-z_][A-Za-z0-9_:.]*\}|\$[A-Za-z_][A-Za-z0-9_]*)
  | (?P<duration>(?:[0-9]+(?:ms|s|m|h|d|w|y))+)
  | (?P<number>0x[0-9a-fA-F]+|(?:[0-9]*\.[0-9]+|[0-9]+)(?:[eE][-+]?[0-9]+)?)
  | (?P<ident>:?[A-Za-z_][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=@,:])
  | (?P<open>[({\[])
  | (?P<close>[)}\]])
    """,
    re.VERBOSE,
)
_CLOSERS = {"(": ")", "{": "}", "[": "]"}


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int


class PromQLError(ValueError):
    """The expression cannot be tokenized."""


def tokenize(expr: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if match is None:
            raise PromQLError(f"unexpected character {expr[pos]!r} at {pos}")
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            tokens.append(Token(kind, match.group(), pos))
        pos = match.end()
    return tokens


def _check_matchers(tokens: list[Token]) -> list[str]:
    """`{a="x", b=~"y|$var"}`: label, operator, quoted value, separated by commas."""
    errors: list[str] = []
    groups: list[list[Token]] = [[]]
    for token in tokens:
        if token.text == ",":
            groups.append([])
        else:
            groups[-1].append(token)
    if groups and not groups[-1]:
        groups.pop()  # a trailing comma is allowed
    for group in groups:
        texts = " ".join(t.text for t in group)
        if len(group) == 1 and group[0].kind == "string":
            continue  # {"metric_name"} selects by name
        if (
            len(group) != 3
            or group[0].kind != "ident"
            or group[1].text not in MATCHER_OPS
            or group[2].kind != "string"
        ):
            errors.append(f"malformed label matcher `{texts}`")
    return errors


def _check_range(tokens: list[Token]) -> list[str]:
    """`[5m]`, `[$__rate_interval]`, or a subquery `[1h:5m]` / `[1h:]`."""
    parts: list[list[Token]] = [[]]
    for token in tokens:
        if token.text == ":":
            parts.append([])
        else:
            parts[-1].append(token)
    texts = "".join(t.text for t in tokens)
    if len(parts) > 2 or not parts[0]:
        return [f"malformed range `[{texts}]`"]
    for index, part in enumerate(parts):
        if index == 1 and not part:
            continue
        if len(part) != 1 or part[0].kind not in {"duration", "var"}:
            return [f"malformed range `[{texts}]`"]
    return []


def check(expr: str) -> list[str]:
    """Problems a light reading of `expr` finds; an empty list means it looks well formed."""
    try:
        tokens = tokenize(expr)
    except PromQLError as exc:
        return [str(exc)]
    if not tokens:
        return ["empty expression"]
    errors: list[str] = []
    stack: list[tuple[str, int]] = []
    for index, token in enumerate(tokens):
        if token.kind == "open":
            stack.append((token.text, index))
        elif token.kind == "close":
            if not stack or _CLOSERS[stack[-1][0]] != token.text:
                errors.append(f"unbalanced {token.text!r} at {token.pos}")
                return errors
            opener, start = stack.pop()
            inner = tokens[start + 1 : index]
            if opener == "{":
                errors.extend(_check_matchers(inner))
            elif opener == "[":
                errors.extend(_check_range(inner))
        elif token.kind == "ident":
            following = tokens[index + 1] if index + 1 < len(tokens) else None
            calls = following is not None and following.text == "("
            in_label_list = _in_label_list(tokens, stack)
            if calls and not in_label_list:
                name = token.text
                if name not in FUNCTIONS and name not in AGGREGATIONS and name not in KEYWORDS:
                    errors.append(f"unknown function `{name}`")
    if stack:
        errors.append(f"unclosed {stack[-1][0]!r}")
    return errors


def _in_label_list(tokens: list[Token], stack: list[tuple[str, int]]) -> bool:
    """Whether the innermost open bracket is a `by (...)`-style list of label names."""
    if not stack or stack[-1][0] != "(":
        return False
    start = stack[-1][1]
    return start > 0 and tokens[start - 1].text in LABEL_LIST_KEYWORDS


def metric_names(expr: str) -> set[str]:
    """The metric names `expr` reads, as they appear on a `/metrics` page."""
    tokens = tokenize(expr)
    names: set[str] = set()
    stack: list[tuple[str, int]] = []
    for index, token in enumerate(tokens):
        if token.kind == "open":
            stack.append((token.text, index))
            continue
        if token.kind == "close":
            if stack:
                stack.pop()
            continue
        if token.kind == "string" and stack and stack[-1][0] == "{":
            before, after = tokens[index - 1].text, tokens[index + 1].text
            if before in {"{", ","} and after in {"}", ","}:
                names.add(token.text[1:-1])  # {"name"} selects by name
            elif before == "=" and tokens[index - 2].text == "__name__":
                names.add(token.text[1:-1])
            continue
        if token.kind != "ident" or token.text in KEYWORDS:
            continue
        if stack and stack[-1][0] in "{[":
            continue  # a label name or a duration, not a metric
        if _in_label_list(tokens, stack):
            continue
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if following is not None and following.text == "(":
            continue  # a function or an aggregation
        if token.text in AGGREGATIONS and following is not None and following.text in KEYWORDS:
            continue  # `sum by (x) (...)`
        names.add(token.text)
    return names
