"""Units and segmenters: exact, chunking-invariant, timely, and never raising."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tools_harness import merge_units, pieces

from conveyor.tools.units import (
    CodeStatements,
    Field,
    FieldDelta,
    JsonFields,
    ParseError,
    PlanSteps,
    Ref,
    Segmenter,
    Statement,
    Step,
    Unit,
    Whole,
    WholeArguments,
    code_field,
    plan_field,
    segmenter_from_spec,
    unit_from_json,
    unit_to_json,
)

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=15,
)
json_objects = st.dictionaries(st.text(max_size=6), json_values, max_size=5)


def leaves(value: Any, path: tuple = ()) -> list[Field]:
    if isinstance(value, dict):
        return [f for k, v in value.items() for f in leaves(v, (*path, k))]
    if isinstance(value, list):
        return [f for i, v in enumerate(value) for f in leaves(v, (*path, i))]
    return [Field(path, value)]


def run(seg: Segmenter, chunks: list[str]) -> list[Unit]:
    units: list[Unit] = []
    for c in chunks:
        units += seg.feed(c)
    return units + seg.close()


def dumps(obj: Any, draw: st.DrawFn | None = None) -> str:
    return json.dumps(obj, ensure_ascii=True)


# ------------------------------------------------------------------ JsonFields
@FAST
@given(obj=json_objects, ascii_only=st.booleans(), indent=st.sampled_from([None, 2]))
def test_json_fields_yields_exactly_the_scalar_leaves(obj: dict, ascii_only: bool, indent) -> None:
    text = json.dumps(obj, ensure_ascii=ascii_only, indent=indent)
    assert run(JsonFields(), [text]) == leaves(json.loads(text))


@FAST
@given(obj=json_objects, data=st.data())
def test_json_fields_any_chunking_same_units(obj: dict, data: st.DataObject) -> None:
    text = json.dumps(obj)
    cuts = data.draw(st.lists(st.integers(1, max(1, len(text) - 1)), max_size=len(text)))
    whole = run(JsonFields(deltas=True), [text])
    chunked = run(JsonFields(deltas=True), pieces(text, cuts))
    assert merge_units(chunked) == merge_units(whole)
    # Every string's deltas add up to its value, and come before its Field.
    for i, u in enumerate(merge_units(whole)):
        if isinstance(u, FieldDelta):
            nxt = merge_units(whole)[i + 1]
            assert isinstance(nxt, Field) and nxt.path == u.path and nxt.value == u.text


@FAST
@given(obj=json_objects)
def test_each_field_is_returned_by_the_feed_that_closes_it(obj: dict) -> None:
    text = json.dumps(obj)
    seg = JsonFields()
    for pos, ch in enumerate(text):
        for unit in seg.feed(ch):
            assert isinstance(unit, Field)
            v = unit.value
            if isinstance(v, str):
                assert ch == '"'  # its closing quote
            elif v is True or v is False or v is None:
                assert text[: pos + 1].endswith(json.dumps(v))
            else:  # a number is known complete at the first character after it
                assert ch in ",]} " and text[pos - 1] in "0123456789"
    assert seg.close() == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (r'{"s": "\ud83d\ude00"}', "😀"),
        (r'{"s": "\ud83d"}', "\ud83d"),  # a lone surrogate, as json.loads gives it
        (r'{"s": "\ud83dx"}', "\ud83dx"),
        (r'{"s": "\ud83d\u0041"}', "\ud83dA"),
        (r'{"s": "\udc00"}', "\udc00"),
        (r'{"s": "\"\\\/\b\f\n\r\t"}', '"\\/\b\f\n\r\t'),
        ('{"s": "raw\nnewline"}', "raw\nnewline"),  # models write these; accepted
    ],
)
def test_every_escape(text: str, value: str) -> None:
    for chunks in ([text], list(text)):
        assert run(JsonFields(), chunks) == [Field(("s",), value)]


@pytest.mark.parametrize(
    "text",
    ['{"a": 01}', '{"a" 1}', '{"a": tru}', "[1]", '{"a": 1} x', '{"a": "\\x"}', '{"a": 1,}',
     '{"a": "\\u12G4"}', '{"a": -}', '{"a": [1 2]}'],
)  # fmt: skip
def test_malformed_json_gives_one_parse_error(text: str) -> None:
    for chunks in ([text], list(text)):
        units = run(JsonFields(), chunks)
        assert sum(isinstance(u, ParseError) for u in units) == 1
        assert isinstance(units[-1], ParseError)


def test_truncated_json_gives_a_parse_error_at_close() -> None:
    seg = JsonFields()
    assert seg.feed('{"a": 1, "b": "x') == [Field(("a",), 1)]
    assert [type(u) for u in seg.close()] == [ParseError]


@settings(max_examples=80, deadline=None)
@given(
    text=st.text(
        alphabet=st.sampled_from(list('{}[]":,\\u0123456789.eE-+truefalsn dé\n')), max_size=60
    )
)
def test_json_fields_never_raises(text: str) -> None:
    for seg in (JsonFields(deltas=True), WholeArguments(), code_field(), plan_field()):
        run(seg, list(text))


def test_deltas_for_chosen_paths_only() -> None:
    seg = JsonFields(deltas=[("code",)])
    units = run(seg, ['{"lang": "py", "code": "ab', 'c"}'])
    assert units == [
        Field(("lang",), "py"),
        FieldDelta(("code",), "ab"),
        FieldDelta(("code",), "c"),
        Field(("code",), "abc"),
    ]


# ------------------------------------------------------------------ CodeStatements
PROGRAM = '''import os
# a comment

x = [1,
     2]
@decorator
@other(
    1)
def f(a):
    """Doc
    string."""
    return a  # done

if x:
    y = 1
elif x is None:
    y = 2
else:
    y = 3
try:
    pass
except ValueError:
    pass
finally:
    z = 1
s = """
not a statement start
"""
t = 'quote \\' inside'
u = 1 + \\
    2
class C:
    pass
print(x)'''
EXPECTED = [
    Statement("import os\n", 1),
    Statement("x = [1,\n     2]\n", 4),
    Statement(
        "@decorator\n@other(\n    1)\ndef f(a):\n"
        '    """Doc\n    string."""\n    return a  # done\n\n',
        6,
    ),
    Statement("if x:\n    y = 1\nelif x is None:\n    y = 2\nelse:\n    y = 3\n", 14),
    Statement("try:\n    pass\nexcept ValueError:\n    pass\nfinally:\n    z = 1\n", 20),
    Statement('s = """\nnot a statement start\n"""\n', 26),
    Statement("t = 'quote \\' inside'\n", 29),
    Statement("u = 1 + \\\n    2\n", 30),
    Statement("class C:\n    pass\n", 32),
    Statement("print(x)", 34),
]


def test_code_statements_golden() -> None:
    assert run(CodeStatements(), [PROGRAM]) == EXPECTED
    assert run(CodeStatements(), list(PROGRAM)) == EXPECTED


def test_statements_come_as_soon_as_they_are_complete() -> None:
    seg = CodeStatements()
    assert seg.feed("x = 1") == []
    assert seg.feed("\n") == [Statement("x = 1\n", 1)]  # a simple statement: at its newline
    assert seg.feed("for i in x:\n    pass\n") == []  # a block may go on...
    assert seg.feed("e") == []  # ...this may be `else`
    assert seg.feed("n") == [Statement("for i in x:\n    pass\n", 2)]  # `en...` is not
    assert seg.feed("d = 2\n") == [Statement("end = 2\n", 4)]
    assert seg.close() == []


statement_pool = st.sampled_from(
    ["a = 1\n", "a += 1\n", "if a:\n    b = 2\n", "if a:\n    b = 2\nelse:\n    b = 3\n",
     "def f():\n    return 1\n", "@staticmethod\ndef g():\n    pass\n", "x = (1,\n2)\n",
     's = """x\n\ny"""\n', "\n", "# c\n", "for i in []:\n    pass\n", "t = 'a#b'\n",
     "class K:\n    x = 1\n\n    y = 2\n", "w = 1 + \\\n  2\n"]
)  # fmt: skip


@FAST
@given(parts=st.lists(statement_pool, max_size=8), data=st.data())
def test_code_statements_any_chunking(parts: list[str], data: st.DataObject) -> None:
    code = "".join(parts)
    cuts = data.draw(st.lists(st.integers(1, max(1, len(code) - 1)), max_size=len(code)))
    whole = run(CodeStatements(), [code])
    assert run(CodeStatements(), pieces(code, cuts)) == whole
    # Statements are the program's lines, in order, at their line numbers.
    lines = code.splitlines(keepends=True)
    for s in whole:
        assert isinstance(s, Statement)
        n = s.code.count("\n") + (0 if s.code.endswith("\n") else 1)
        assert "".join(lines[s.first_line - 1 : s.first_line - 1 + n]) == s.code
    # Running them one by one is running the program.
    ns1: dict[str, Any] = {"a": 1}
    ns2: dict[str, Any] = {"a": 1}
    exec(compile(code, "<w>", "exec"), ns1)  # noqa: S102
    for s in whole:
        assert isinstance(s, Statement)
        exec(compile(s.code, "<s>", "exec"), ns2)  # noqa: S102
    ns1.pop("__builtins__", None), ns2.pop("__builtins__", None)
    assert ns1.keys() == ns2.keys() and ns1["a"] == ns2["a"]


# ------------------------------------------------------------------ PlanSteps
def test_plan_steps_golden() -> None:
    plan = (
        '$1 = search("Microsoft market cap")\n'
        "Thought: now the other one\n"
        '$2 = search(query="Apple market cap", k=3)\n'
        "\n"
        "$3 = ratio($1, $2, note='about $1', opts={\"x\": [$2, -1.5, null]})"
    )
    assert run(PlanSteps(), list(plan)) == [
        Step(1, "search", {0: "Microsoft market cap"}, ()),
        Step(2, "search", {"query": "Apple market cap", "k": 3}, ()),
        Step(3, "ratio", {0: Ref(1), 1: Ref(2), "note": "about $1",
                          "opts": {"x": [Ref(2), -1.5, None]}}, (1, 2)),
    ]  # fmt: skip


def test_plan_step_comes_at_the_end_of_its_line() -> None:
    seg = PlanSteps()
    assert seg.feed('$1 = search("x")') == []
    assert seg.feed("\n") == [Step(1, "search", {0: "x"}, ())]


@pytest.mark.parametrize(
    "line", ["search(x)", "$1 = search(x)", "$1 = s(*a)", "$2 = s($3)", "$1 = s(a.b)", "$x = s()"]
)
def test_bad_plan_line_is_a_parse_error_and_ends_the_plan(line: str) -> None:
    units = run(PlanSteps(), [line + '\n$9 = search("y")\n'])
    assert len(units) == 1 and isinstance(units[0], ParseError)


# ------------------------------------------------------------------ composed, Whole, codec
def test_code_field_cuts_the_code_string_into_statements() -> None:
    args = json.dumps({"code": "import math\nx = math.pi\nif x:\n    print(x)\nprint(1)\n"})
    expected = [
        Statement("import math\n", 1),
        Statement("x = math.pi\n", 2),
        Statement("if x:\n    print(x)\n", 3),
        Statement("print(1)\n", 5),
    ]
    assert run(code_field(), [args]) == expected
    assert run(code_field(), list(args)) == expected


def test_plan_field_cuts_the_plan_string_into_steps() -> None:
    args = '{"plan": "$1 = a(1)\\n$2 = b($1)"}'
    assert run(plan_field(), list(args)) == [
        Step(1, "a", {0: 1}, ()),
        Step(2, "b", {0: Ref(1)}, (1,)),
    ]


@FAST
@given(obj=json_objects, data=st.data())
def test_whole_is_the_object_in_the_feed_that_closes_it(obj: dict, data: st.DataObject) -> None:
    text = json.dumps(obj)
    cuts = data.draw(st.lists(st.integers(1, max(1, len(text) - 1)), max_size=10))
    seg = WholeArguments()
    chunks = pieces(text, cuts)
    for c in chunks[:-1]:
        assert seg.feed(c) == []
    assert seg.feed(chunks[-1]) == [Whole(obj)]
    assert seg.close() == []


units = st.one_of(
    st.builds(
        Field,
        st.lists(st.text(max_size=3) | st.integers(0, 9), max_size=3).map(tuple),
        json_scalars,
    ),
    st.builds(
        FieldDelta,
        st.lists(st.text(max_size=3) | st.integers(0, 9), max_size=3).map(tuple),
        st.text(),
    ),
    st.builds(Statement, st.text(), st.integers(1, 100)),
    st.builds(
        Step,
        st.integers(1, 9),
        st.text(max_size=5),
        st.dictionaries(
            st.text(max_size=3) | st.integers(0, 3),
            json_values | st.builds(Ref, st.integers(1, 9)),
            max_size=3,
        ),
        st.lists(st.integers(1, 9), max_size=3).map(tuple),
    ),
    st.builds(Whole, json_objects),
    st.builds(ParseError, st.text()),
)


@FAST
@given(unit=units)
def test_units_round_trip_through_json_exactly(unit: Unit) -> None:
    wire = json.loads(json.dumps(unit_to_json(unit)))
    back = unit_from_json(wire)
    assert back == unit and type(back) is type(unit)
    if isinstance(unit, (Field, FieldDelta)):
        assert isinstance(back.path, tuple)  # type: ignore[union-attr]


def test_tuples_inside_values_survive() -> None:
    unit = Whole({"t": (1, (2, "x")), "d": {"k": [(), {}]}})
    assert unit_from_json(json.loads(json.dumps(unit_to_json(unit)))) == unit


@pytest.mark.parametrize(
    "seg",
    [JsonFields(), JsonFields(deltas=True), JsonFields(deltas=[("a", 0)]), CodeStatements(),
     PlanSteps(), WholeArguments(), code_field(), plan_field("steps")],
    ids=repr,
)  # fmt: skip
def test_segmenters_rebuild_from_their_spec(seg: Segmenter) -> None:
    spec = json.loads(json.dumps(seg.spec()))
    again = segmenter_from_spec(spec)
    assert type(again) is type(seg) and again.spec() == seg.spec()


def test_unknown_spec_and_unit_are_refused() -> None:
    with pytest.raises(ValueError):
        segmenter_from_spec({"kind": "telepathy"})
    with pytest.raises(ValueError):
        unit_from_json({"type": "vibe"})
