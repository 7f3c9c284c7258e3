"""Golden replies for every tool-call format, with the events they must give (whole or chunked)."""
# ruff: noqa: E501 - a golden reply reads best on one line

from __future__ import annotations

from tools_harness import A, E, F, Golden, S, T

W = '{"city": "Paris"}'
GOLDEN: list[Golden] = [
    # ---------------------------------------------------------------- hermes
    Golden("hermes", "text-only", "No tools needed: 1 < 2 and <b>bold</b>.", [
        T("No tools needed: 1 < 2 and <b>bold</b>."),
    ]),
    Golden("hermes", "one-call", f'<tool_call>\n{{"name": "weather", "arguments": {W}}}\n</tool_call>', [
        S(0, "weather"), A(0, W), F(0, "weather", {"city": "Paris"}),
    ]),
    Golden(
        "hermes",
        "two-calls-text-around",
        'Let me look.\n<tool_call>\n{"name": "search", "arguments": {"query": "a"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "calculator", "arguments": {"expression": "1+1"}}\n</tool_call>\nDone.',
        [
            T("Let me look.\n"),
            S(0, "search"), A(0, '{"query": "a"}'), F(0, "search", {"query": "a"}),
            T("\n"),
            S(1, "calculator"), A(1, '{"expression": "1+1"}'),
            F(1, "calculator", {"expression": "1+1"}),
            T("\nDone."),
        ],
    ),
    Golden(
        "hermes",
        "unicode-escapes",
        'Ünïcode ✓ <tool_call>{"name": "echo", "arguments": {"s": "é\\u00e9\\ud83d\\ude00\\n\\t\\"\\\\/", '
        '"nested": {"list": [1, -2.5e3, true, null, "}"]}}}</tool_call>',
        [
            T("Ünïcode ✓ "),
            S(0, "echo"),
            A(0, '{"s": "é\\u00e9\\ud83d\\ude00\\n\\t\\"\\\\/", "nested": {"list": [1, -2.5e3, true, null, "}"]}}'),
            F(0, "echo", {"s": 'éé😀\n\t"\\/', "nested": {"list": [1, -2500.0, True, None, "}"]}}),
        ],
    ),
    Golden(
        "hermes",
        "name-after-arguments",
        '<tool_call>{"arguments": {"q": 1}, "id": "x", "name": "late"}</tool_call>',
        [S(0, "late"), A(0, '{"q": 1}'), F(0, "late", {"q": 1})],
    ),
    Golden(
        "hermes",
        "no-arguments-and-string-arguments",
        '<tool_call>{"name": "now"}</tool_call><tool_call>{"name": "s", "arguments": "{\\"a\\": 1}"}</tool_call>',
        [
            S(0, "now"), A(0, "{}"), F(0, "now", {}),
            S(1, "s"), A(1, '{"a": 1}'), F(1, "s", {"a": 1}),
        ],
    ),
    Golden(
        "hermes",
        "malformed-then-goes-on",
        '<tool_call>{"name": "bad", "arguments": {"a": </tool_call> then '
        '<tool_call>not json</tool_call><tool_call>{"name": "ok", "arguments": {}}</tool_call>',
        [
            S(0, "bad"), A(0, '{"a": '), E(0, "malformed"),
            T(" then "),
            E(1, "expected a JSON object"),
            S(2, "ok"), A(2, "{}"), F(2, "ok", {}),
        ],
    ),
    Golden(
        "hermes",
        "invalid-json-inside-balanced-braces",
        '<tool_call>{"name": "x", "arguments": {"a": 1,}}</tool_call>after',
        [S(0, "x"), A(0, '{"a": 1,}'), E(0, "malformed"), T("after")],
    ),
    Golden(
        "hermes",
        "truncated",
        'Calling <tool_call>{"name": "search", "arguments": {"query": "unfinis',
        [T("Calling "), S(0, "search"), A(0, '{"query": "unfinis'), E(0, "truncated")],
    ),
    Golden("hermes", "truncated-tag", "text <tool_ca", [T("text <tool_ca")]),
    # ---------------------------------------------------------------- llama3_json
    Golden(
        "llama3_json",
        "python-tag-two-calls",
        '<|python_tag|>{"name": "a", "parameters": {"x": 1}}; {"name": "b", "parameters": {"y": "é"}}',
        [
            S(0, "a"), A(0, '{"x": 1}'), F(0, "a", {"x": 1}),
            S(1, "b"), A(1, '{"y": "é"}'), F(1, "b", {"y": "é"}),
        ],
    ),
    Golden(
        "llama3_json",
        "bare-json",
        '  {"name": "weather", "parameters": {"city": "Paris", "days": [1, 2]}}',
        [
            S(0, "weather"), A(0, '{"city": "Paris", "days": [1, 2]}'),
            F(0, "weather", {"city": "Paris", "days": [1, 2]}),
        ],
    ),
    Golden("llama3_json", "plain-text", "The answer is {probably} 42.", [
        T("The answer is {probably} 42."),
    ]),
    Golden(
        "llama3_json",
        "text-then-tag",
        'Sure.<|python_tag|>{"name": "a", "arguments": {}}',
        [T("Sure."), S(0, "a"), A(0, "{}"), F(0, "a", {})],
    ),
    Golden(
        "llama3_json",
        "malformed-then-next",
        '<|python_tag|>{"name": "a", "parameters": {"x": ?}}; {"name": "b", "parameters": {}}',
        [S(0, "a"), A(0, '{"x": '), E(0, "malformed"), S(1, "b"), A(1, "{}"), F(1, "b", {})],
    ),
    Golden(
        "llama3_json",
        "truncated",
        '{"name": "a", "parameters": {"x": [1, 2',
        [S(0, "a"), A(0, '{"x": [1, 2'), E(0, "truncated")],
    ),
    # ---------------------------------------------------------------- mistral
    Golden(
        "mistral",
        "array-two-calls",
        'Sure.[TOOL_CALLS][{"name": "a", "arguments": {"x": 1}, "id": "abc123XYZ"}, '
        '{"name": "b", "arguments": {"s": "\\u00fc"}}] ok',
        [
            T("Sure."),
            S(0, "a"), A(0, '{"x": 1}'), F(0, "a", {"x": 1}),
            S(1, "b"), A(1, '{"s": "\\u00fc"}'), F(1, "b", {"s": "ü"}),
            T(" ok"),
        ],
    ),
    Golden(
        "mistral",
        "v11",
        '[TOOL_CALLS]weather[ARGS]{"city": "Zürich"}[TOOL_CALLS]time[CALL_ID]a1b2c3d4e[ARGS]{}',
        [
            S(0, "weather"), A(0, '{"city": "Zürich"}'), F(0, "weather", {"city": "Zürich"}),
            S(1, "time"), A(1, "{}"), F(1, "time", {}),
        ],
    ),
    Golden(
        "mistral",
        "malformed-then-goes-on",
        '[TOOL_CALLS][{"name": "a", "arguments": {"x": @}}]\nText [TOOL_CALLS][{"name": "b", "arguments": {}}]',
        [
            S(0, "a"), A(0, '{"x": '), E(0, "malformed"),
            T("Text "),
            S(1, "b"), A(1, "{}"), F(1, "b", {}),
        ],
    ),
    Golden(
        "mistral",
        "truncated",
        '[TOOL_CALLS][{"name": "a", "arguments": {"x": "abc',
        [S(0, "a"), A(0, '{"x": "abc'), E(0, "truncated")],
    ),
    Golden("mistral", "text-only", "[not a call] [TOOL_CALL", [T("[not a call] [TOOL_CALL")]),
    # ---------------------------------------------------------------- pythonic
    Golden(
        "pythonic",
        "two-calls",
        '[get_weather(city="Paris"), search(query=\'x, y)\', k=3)]',
        [
            S(0, "get_weather"), A(0, '{"city": "Paris"}'), F(0, "get_weather", {"city": "Paris"}),
            S(1, "search"), A(1, '{"query": "x, y)", "k": 3}'),
            F(1, "search", {"query": "x, y)", "k": 3}),
        ],
    ),
    Golden(
        "pythonic",
        "text-around-literals",
        'I will call [f(a=[1, (2, 3)], b={"k": None}, c="é\\n", d=True, e=-1.5, f="""tri"ple""")] now.',
        [
            T("I will call "),
            S(0, "f"),
            A(0, '{"a": [1, [2, 3]], "b": {"k": null}, "c": "é\\n", "d": true, "e": -1.5, "f": "tri\\"ple"}'),
            F(0, "f", {"a": [1, [2, 3]], "b": {"k": None}, "c": "é\n", "d": True, "e": -1.5, "f": 'tri"ple'}),
            T(" now."),
        ],
    ),
    Golden("pythonic", "no-args", "[now()]", [S(0, "now"), A(0, "{}"), F(0, "now", {})]),
    Golden("pythonic", "not-calls", "a[0] and [1, 2] and [x]", [T("a[0] and [1, 2] and [x]")]),
    Golden(
        "pythonic",
        "malformed-then-goes-on",
        "[f(1)] then [g(x=y)] then [h(z=1)]",
        [
            S(0, "f"), E(0, "keyword"), T(" then "),
            S(1, "g"), E(1, "literal"), T(" then "),
            S(2, "h"), A(2, '{"z": 1}'), F(2, "h", {"z": 1}),
        ],
    ),
    Golden(
        "pythonic",
        "truncated",
        '[search(query="abc", k=',
        [S(0, "search"), A(0, '{"query": "abc"'), E(0, "truncated")],
    ),
    # ---------------------------------------------------------------- code
    Golden(
        "code",
        "two-blocks",
        'First:\n```python\nimport math\nprint("é\\t", math.pi)\n```\nThen:\n```py\nx = 1\n```',
        [
            T("First:\n"),
            S(0, "python"), A(0, '{"code": "import math\\nprint(\\"é\\\\t\\", math.pi)\\n"}'),
            F(0, "python", {"code": 'import math\nprint("é\\t", math.pi)\n'}),
            T("\nThen:\n"),
            S(1, "python"), A(1, '{"code": "x = 1\\n"}'), F(1, "python", {"code": "x = 1\n"}),
        ],
    ),
    Golden(
        "code",
        "other-fences-are-text",
        "```bash\nls\n```\n`inline` and ``` not at start\n",
        [T("```bash\nls\n```\n`inline` and ``` not at start\n")],
    ),
    Golden(
        "code",
        "indented-code-and-backticks-inside",
        '```python\ndef f():\n    s = "``"\n    return s\n```\n',
        [
            S(0, "python"), A(0, '{"code": "def f():\\n    s = \\"``\\"\\n    return s\\n"}'),
            F(0, "python", {"code": 'def f():\n    s = "``"\n    return s\n'}),
            T("\n"),
        ],
    ),
    Golden(
        "code",
        "truncated",
        "```python\nprint(1)\nprint(",
        [S(0, "python"), A(0, '{"code": "print(1)\\nprint('), E(0, "truncated")],
    ),
    # ---------------------------------------------------------------- plan
    Golden(
        "plan",
        "one-plan",
        'Plan:\n>>>\n$1 = search("Microsoft market cap")\n$2 = search("Apple market cap")\n'
        "$3 = calculator(\"$1 / $2\")\n<<<\nDone.",
        [
            T("Plan:\n"),
            S(0, "planner"),
            A(0, '{"plan": "$1 = search(\\"Microsoft market cap\\")\\n$2 = search(\\"Apple market cap\\")\\n'
                 '$3 = calculator(\\"$1 / $2\\")\\n"}'),
            F(0, "planner", {"plan": '$1 = search("Microsoft market cap")\n'
                                     '$2 = search("Apple market cap")\n$3 = calculator("$1 / $2")\n'}),
            T("\nDone."),
        ],
    ),
    Golden("plan", "prompts-are-text", ">>> print(1)\n>>>> x\n", [T(">>> print(1)\n>>>> x\n")]),
    Golden(
        "plan",
        "truncated",
        '>>>\n$1 = search("x")\n',
        [S(0, "planner"), A(0, '{"plan": "$1 = search(\\"x\\")\\n'), E(0, "truncated")],
    ),
]  # fmt: skip
