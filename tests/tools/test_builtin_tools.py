"""The built-in tools, the @tool decorator and the registry, driven through their segmenters."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

import pytest

from conveyor.tools import (
    CalculatorTool,
    Reject,
    Result,
    Tool,
    ToolRegistry,
    UnknownToolError,
    default_registry,
    tool,
    validated,
)
from conveyor.tools.units import Field, Statement


async def drive(t: Tool, text: str, chunk: int | None = None) -> tuple[Result, list[Reject]]:
    """Start ``t``, feed ``text`` through its segmenter (whole, or ``chunk`` characters at a
    time), then finish it. Returns the result and any rejections."""
    await t.start()
    seg = t.segmenter()
    rejects: list[Reject] = []
    chunks = [text] if chunk is None else [text[i : i + chunk] for i in range(0, len(text), chunk)]
    for c in chunks:
        for u in seg.feed(c):
            if (r := await t.feed(u)) is not None:
                rejects.append(r)
    for u in seg.close():
        if (r := await t.feed(u)) is not None:
            rejects.append(r)
    return await t.finish(), rejects


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE items (name TEXT, price REAL)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [("apple", 1.5), ("pear", 2.0)])
    return path


CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("python", {}, {"code": "import math\nx = [i * i for i in range(4)]\nif x:\n    print(sum(x))\n"
                            "x\nprint('é', math.pi)\n"}),
    ("python", {}, {"code": "a = 1\nraise ValueError('boom')\nprint('never')\n"}),
    ("calculator", {}, {"expression": "2 * (3 + 4) ** 2 - sqrt(16) / 4"}),
    ("calculator", {}, {"expression": "__import__('os')"}),
    ("sqlite", {}, {"query": "SELECT name, price FROM items ORDER BY price"}),
    ("planner", {}, {"plan": '$1 = calculator("6 * 7")\n$2 = calculator("$1 + 1")\n'
                             '$3 = python(code="print($1 * 2)")\n'}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "config", "args"), CASES, ids=lambda v: str(v)[:30])
async def test_fed_unit_by_unit_equals_fed_whole(
    name: str, config: dict[str, Any], args: dict[str, Any], database: Path
) -> None:
    if name == "sqlite":
        config = {"database": str(database)}
    registry = default_registry()
    text = json.dumps(args)
    whole = await drive(registry.create(name, config), text)
    for chunk in (1, 3, 7):
        assert await drive(registry.create(name, config), text, chunk) == whole
    assert whole[1] == []


# ------------------------------------------------------------------ python
async def test_python_runs_statement_one_before_statement_two_arrives(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    code = (
        f"from pathlib import Path\n_ = Path({str(marker)!r}).write_text('1')\n"
        f"import time\nprint(Path({str(marker)!r}).read_text())\n"
    )
    text = json.dumps({"code": code})
    cut = text.index("import time") + len("imp")  # statement 3 is only half written
    t = default_registry().create("python")
    await t.start()
    seg = t.segmenter()
    units = seg.feed(text[:cut])
    assert [type(u) for u in units] == [Statement, Statement]
    assert not marker.exists()
    for u in units:
        await t.feed(u)
    assert marker.read_text() == "1"  # ran while the rest of the call is still unwritten
    for u in seg.feed(text[cut:]) + seg.close():
        await t.feed(u)
    assert (await t.finish()) == Result("1\n", data={"stdout": "1\n", "stderr": ""})


async def test_python_error_has_traceback_and_stops_the_call() -> None:
    code = (
        "import sys\nprint('out')\nprint('err', file=sys.stderr)\n"
        "def f():\n    return 1 / 0\n\nf()\nprint('never')\n"
    )
    result, _ = await drive(default_registry().create("python"), json.dumps({"code": code}), 5)
    assert result.is_error
    assert result.content.startswith("out\nerr\nTraceback")
    assert "line 5, in f\n    return 1 / 0" in result.content  # the model's own line numbers
    assert "ZeroDivisionError" in result.content and "never" not in result.content


async def test_python_syntax_error_is_an_error_result() -> None:
    result, _ = await drive(default_registry().create("python"), json.dumps({"code": "x = (\n"}))
    assert result.is_error and "SyntaxError" in result.content


async def test_concurrent_python_invocations_keep_their_output_apart() -> None:
    registry = default_registry()

    async def one(i: int) -> Result:
        code = f"import time\nfor _ in range(3):\n    print({i})\n    time.sleep(0.01)\n"
        return (await drive(registry.create("python"), json.dumps({"code": code}), 4))[0]

    results = await asyncio.gather(*(one(i) for i in range(4)))
    assert [r.content for r in results] == [f"{i}\n" * 3 for i in range(4)]


# ------------------------------------------------------------------ sqlite
async def test_sqlite_is_read_only_unless_configured(database: Path) -> None:
    registry = default_registry()
    write = json.dumps({"query": "INSERT INTO items VALUES ('plum', 3.0)"})
    result, _ = await drive(registry.create("sqlite", {"database": str(database)}), write)
    assert result.is_error and "readonly" in result.content.replace(" ", "").lower()
    config = {"database": str(database), "readonly": False}
    result, _ = await drive(registry.create("sqlite", config), write)
    assert not result.is_error
    count = json.dumps({"query": "SELECT count(*) AS n FROM items"})
    result, _ = await drive(registry.create("sqlite", {"database": str(database)}), count)
    assert result.data == {"columns": ["n"], "rows": [[3]]}


async def test_sqlite_runs_the_query_when_the_field_closes(database: Path) -> None:
    t = default_registry().create("sqlite", {"database": str(database)})
    await t.start()
    await t.feed(Field(("query",), "SELECT count(*) FROM items"))
    await asyncio.to_thread(
        database.unlink
    )  # the query already ran: removing the file now changes nothing
    assert (await t.finish()).data == {"columns": ["count(*)"], "rows": [[2]]}


# ------------------------------------------------------------------ calculator
@pytest.mark.parametrize(
    ("expression", "value"),
    [("1 + 2 * 3", "7"), ("2 ** 10", "1024"), ("-(3 - 5) // 2", "1"), ("round(pi, 3)", "3.142"),
     ("max(1, 2, 3) % 2", "1"), ("7 / 2", "3.5")],
)  # fmt: skip
async def test_calculator(expression: str, value: str) -> None:
    result, _ = await drive(CalculatorTool(), json.dumps({"expression": expression}))
    assert result == Result(value, data={"value": json.loads(value)})


@pytest.mark.parametrize(
    "expression",
    ["__import__('os').system('true')", "(1).__class__", "open('x')", "9 ** 9 ** 9", "2 ^ 3",
     "10 ** 100000", "x + 1", "1 / 0", "'a' * 3", "[1, 2]", "lambda: 1", "1" * 2000,
     "factorial(100000)"],
)  # fmt: skip
async def test_calculator_refuses_what_is_not_safe_arithmetic(expression: str) -> None:
    result, _ = await drive(CalculatorTool(), json.dumps({"expression": expression}))
    assert result.is_error


# ------------------------------------------------------------------ search
class _SearchHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so a warm connection can be reused
    seen: list[tuple[str, tuple[str, int], dict[str, Any] | None]] = []
    arrived = threading.Event()

    def do_HEAD(self) -> None:  # noqa: N802
        self.seen.append(("HEAD", self.client_address, None))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append(("POST", self.client_address, body))
        self.arrived.set()
        payload = json.dumps({"results": [
            {"title": f"{body['query']} #{i}", "url": f"https://x.test/{i}", "snippet": "s"}
            for i in range(body["k"])
        ]}).encode()  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def search_server() -> Iterator[str]:
    """A real HTTP search endpoint on 127.0.0.1."""
    _SearchHandler.seen = []
    _SearchHandler.arrived = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SearchHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/search"
    server.shutdown()
    server.server_close()
    thread.join()


async def test_search_posts_the_moment_query_closes_on_the_warm_connection(
    search_server: str,
) -> None:
    t = default_registry().create("search", {"endpoint": search_server, "k": 2})
    await t.start()
    seg = t.segmenter()
    for u in seg.feed('{"query": "conveyor belts", "ignored": "still being wri'):
        assert await t.feed(u) is None
    # finish() has not been called: the request must arrive on its own.
    assert await asyncio.to_thread(_SearchHandler.arrived.wait, 10)
    for u in seg.feed('tten"}') + seg.close():
        await t.feed(u)
    result = await t.finish()
    assert not result.is_error
    assert result.data == {"results": [
        {"title": "conveyor belts #0", "url": "https://x.test/0", "snippet": "s"},
        {"title": "conveyor belts #1", "url": "https://x.test/1", "snippet": "s"},
    ]}  # fmt: skip
    (head, head_peer, _), (post, post_peer, body) = _SearchHandler.seen
    assert (head, post, body) == ("HEAD", "POST", {"query": "conveyor belts", "k": 2})
    assert head_peer == post_peer  # the query reused the connection opened at start


async def test_search_fed_unit_by_unit_equals_fed_whole(search_server: str) -> None:
    text = json.dumps({"query": "é ✓"})
    registry = default_registry()
    whole = await drive(registry.create("search", {"endpoint": search_server}), text)
    assert await drive(registry.create("search", {"endpoint": search_server}), text, 2) == whole
    assert not whole[0].is_error


async def test_search_error_is_an_error_result() -> None:
    t = default_registry().create("search", {"endpoint": "http://127.0.0.1:9/search", "timeout": 2})
    result, _ = await drive(t, json.dumps({"query": "x"}))
    assert result.is_error and "search failed" in result.content


# ------------------------------------------------------------------ planner
async def test_planner_runs_steps_as_soon_as_ready_and_in_parallel() -> None:
    log: list[str] = []
    gates = {n: asyncio.Event() for n in "abc"}

    @tool
    async def slow(name: str) -> str:
        """A step that waits for the test to release it."""
        log.append(f"start {name}")
        await gates[name[0]].wait()
        log.append(f"end {name}")
        return name.upper()

    registry = ToolRegistry([slow, CalculatorTool])
    planner = default_registry().create("planner")
    planner.use_registry(registry)
    await planner.start()
    seg = planner.segmenter()

    async def feed(text: str) -> None:
        for u in seg.feed(text):
            assert await planner.feed(u) is None
        for _ in range(20):
            await asyncio.sleep(0)

    await feed('{"plan": "$1 = slow(\\"a\\")\\n$2 = sl')
    assert log == ["start a"]  # step 1 runs while step 2 is still being written
    await feed('ow(\\"b\\")\\n$3 = slow(name=\\"c after $1 and $2\\")\\n')
    assert log == ["start a", "start b"]  # independent steps run side by side; $3 waits
    gates["a"].set()
    await feed("")
    assert log == ["start a", "start b", "end a"]
    gates["b"].set()
    gates["c"].set()
    await feed('"}')
    result = await planner.finish()
    assert log[-2:] == ["start c after A and B", "end c after A and B"]
    assert result.content == "$1 = slow: A\n$2 = slow: B\n$3 = slow: C AFTER A AND B"


@pytest.mark.parametrize(
    ("plan", "reason"),
    [('$1 = nope("x")', "unknown tool"), ("$1 = calculator($2)", "later step"),
     ('$1 = calculator("1")\n$1 = calculator("2")', "twice"), ("this is not a plan", "bad plan")],
)  # fmt: skip
async def test_planner_rejects_an_impossible_plan_early(plan: str, reason: str) -> None:
    _, rejects = await drive(
        default_registry().create("planner"), json.dumps({"plan": plan + "\n"})
    )
    assert rejects and reason in rejects[0].reason


# ------------------------------------------------------------------ validated
class Recorder(Tool):
    name = "weather"
    description = "Weather for a city."
    parameters = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "pattern": "^[A-Z]"},
            "unit": {"enum": ["c", "f"]},
            "days": {"type": "integer", "minimum": 1, "maximum": 14},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 3}},
        },
        "additionalProperties": False,
    }
    fed: list[Any] = []

    async def feed(self, unit: Any) -> None:
        Recorder.fed.append(unit)

    async def finish(self) -> Result:
        return Result(f"{len(Recorder.fed)} fields")


@pytest.mark.parametrize(
    ("arguments", "bad"),
    [('{"city": "Paris", "unit": "kelvin", "days": 3}', "unit"),
     ('{"city": "paris", "unit": "c"}', "city"),
     ('{"city": "Paris", "days": 15, "unit": "c"}', "days"),
     ('{"city": "Paris", "days": 2.5}', "days"),
     ('{"city": "Paris", "tags": ["ok", "toolong"], "days": 1}', "tags.1"),
     ('{"city": "Paris", "wind": true}', "wind"),
     ('{"city": "Paris", "days": 2, "unit": "f"', "truncated")],
)  # fmt: skip
async def test_validated_rejects_at_the_first_bad_field(arguments: str, bad: str) -> None:
    Recorder.fed = []
    t = validated(Recorder)()
    await t.start()
    seg = t.segmenter()
    rejected_after = None
    for i, ch in enumerate(arguments):
        for u in seg.feed(ch):
            if await t.feed(u) is not None and rejected_after is None:
                rejected_after = i
    for u in seg.close():
        if await t.feed(u) is not None and rejected_after is None:
            rejected_after = len(arguments)
    assert rejected_after is not None
    if bad != "truncated":
        # Rejected at the character that closed the bad field, before the rest was written.
        good_fields = [f for f in Recorder.fed if isinstance(f, Field)]
        assert all(".".join(map(str, f.path)) != bad for f in good_fields)
        assert bad.split(".")[0] in (await t.finish()).content
    else:
        assert (await t.finish()).is_error


async def test_validated_custom_predicate_and_unit_rules() -> None:
    safe_python = validated(
        default_registry().create("python").__class__,
        {Statement: lambda s: "import os" not in s.code or "no os, please"},
    )
    code = "x = 1\nimport os\nprint('never')\n"
    result, rejects = await drive(safe_python(), json.dumps({"code": code}), 4)
    assert rejects[0] == Reject("no os, please") and result.is_error
    assert "never" not in result.content
    calc = validated(CalculatorTool, {"expression": lambda e: len(e) < 10})
    _, rejects = await drive(calc(), json.dumps({"expression": "1 + 1 + 1 + 1 + 1"}))
    assert rejects == [Reject("`expression` breaks its rule")]
    _, rejects = await drive(calc(), json.dumps({"expression": "1 + 1"}))
    assert rejects == []


# ------------------------------------------------------------------ @tool and the registry
@tool
def add(a: int, b: int = 2, mode: Literal["fast", "slow"] = "fast", note: str | None = None) -> int:
    """Add two numbers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


@tool(name="shout")
async def shout_text(text: str) -> str:
    """Upper-case a text."""
    return text.upper()


@tool
def broken() -> str:
    """Always fails."""
    raise RuntimeError("nope")


def test_tool_decorator_schema() -> None:
    assert add.openai_schema() == {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two numbers.",
            "parameters": {
                "type": "object",
                "properties": {
                    "a": {"type": "integer", "description": "The first number."},
                    "b": {"type": "integer", "description": "The second number.", "default": 2},
                    "mode": {"enum": ["fast", "slow"], "default": "fast"},
                    "note": {"type": "string", "default": None},
                },
                "required": ["a"],
            },
        },
    }


async def test_tool_decorator_runs_sync_and_async_functions() -> None:
    registry = ToolRegistry([add, shout_text, broken])
    assert (await drive(registry.create("add"), '{"a": 40}', 2))[0] == Result(
        "42", data={"value": 42}
    )
    assert (await drive(registry.create("shout"), '{"text": "hi"}'))[0] == Result("HI")
    result, _ = await drive(registry.create("broken"), "{}")
    assert result == Result("RuntimeError: nope", is_error=True)
    _, rejects = await drive(registry.create("add"), '{"a": ')
    assert len(rejects) == 1


def test_registry_specs_carry_each_tools_segmenter() -> None:
    registry = default_registry()
    assert registry.names() == ["calculator", "planner", "python", "search", "sqlite"]
    specs = {s["function"]["name"]: s["x-conveyor"]["segmenter"] for s in registry.specs()}
    assert specs["python"] == {
        "kind": "field_text",
        "field": "code",
        "inner": {"kind": "code_statements"},
    }
    assert specs["planner"] == {
        "kind": "field_text",
        "field": "plan",
        "inner": {"kind": "plan_steps"},
    }
    assert specs["search"] == {"kind": "json_fields", "deltas": False}
    assert [t["function"]["name"] for t in registry.openai_tools(["sqlite"])] == ["sqlite"]
    json.dumps(registry.specs())
    with pytest.raises(UnknownToolError):
        registry.create("nope")
    registry.register(add)
    assert "add" in registry and registry.specs(["add"])[0]["x-conveyor"]["segmenter"] == {
        "kind": "whole"
    }
