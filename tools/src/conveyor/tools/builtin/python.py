"""The python tool: a stateful interpreter that runs each statement as soon as it is complete."""

from __future__ import annotations

import ast
import asyncio
import io
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from conveyor.tools._tool import Reject, Result, Tool
from conveyor.tools.builtin._capture import captured
from conveyor.tools.units import ParseError, Segmenter, Statement, Unit, Whole, code_field

FILENAME = "<python>"
# CPython 3.11 keeps the AST converter's recursion depth per interpreter, not per thread: calls
# run in-process at once (the SDK, not the sidecar) failed with "AST constructor recursion depth
# mismatch". Parsing and compiling take turns; running the code does not.
_AST_LOCK = threading.Lock()


class PythonTool(Tool):
    """Runs Python statement by statement in one namespace (in-process: the sidecar isolates).

    A bare expression's value is printed, as in a REPL. An exception stops the call: later
    statements are skipped and the result is an error with the output so far and the traceback.
    """

    name: ClassVar[str] = "python"
    description: ClassVar[str] = (
        "Run Python code in a stateful interpreter and return what it prints. "
        "The value of a bare expression is printed too."
    )
    parameters: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"code": {"type": "string", "description": "Python source code."}},
        "required": ["code"],
    }

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config=config or {})
        self._namespace: dict[str, Any] = {"__name__": "__main__"}
        self._stdout = io.StringIO()
        self._stderr = io.StringIO()
        self._error: str | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._source: list[str] = []

    def segmenter(self) -> Segmenter:
        return code_field("code")

    def use_session(self, state: dict[str, Any]) -> None:
        # The session's calls share one namespace: a later call sees the earlier ones' names.
        self._namespace = state.setdefault("python.namespace", self._namespace)

    async def start(self) -> None:
        # One thread per invocation keeps its statements ordered and off the event loop.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="conveyor-python")

    async def feed(self, unit: Unit) -> Reject | None:
        if isinstance(unit, ParseError):
            return Reject(unit.message)
        if isinstance(unit, Whole):
            code = unit.arguments.get("code")
            if not isinstance(code, str):
                return Reject("`code` must be a string")
            unit = Statement(code, 1)
        if not isinstance(unit, Statement) or self._error is not None:
            return None
        if self._executor is None:
            await self.start()
        assert self._executor is not None
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._run, unit)
        return None

    async def finish(self) -> Result:
        self._shutdown()
        out, err = self._stdout.getvalue(), self._stderr.getvalue()
        data = {"stdout": out, "stderr": err}
        if self._error is not None:
            return Result(out + err + self._error, is_error=True, data=data)
        return Result(out + err, data=data)

    async def cancel(self) -> None:
        self._shutdown()

    def _shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def _run(self, stmt: Statement) -> None:
        # Line numbers in tracebacks match the model's code: pad to the statement's first line.
        self._source.extend([""] * (stmt.first_line - 1 - len(self._source)))
        self._source[stmt.first_line - 1 :] = stmt.code.splitlines(keepends=True)
        with captured(self._stdout, self._stderr):
            try:
                with _AST_LOCK:
                    tree = ast.parse("\n" * (stmt.first_line - 1) + stmt.code, FILENAME)
                for node in tree.body:
                    self._run_node(node)
            except BaseException as exc:  # noqa: B036 - a SystemExit from model code is its error
                self._error = _user_traceback(exc, self._source)

    def _run_node(self, node: ast.stmt) -> None:
        if isinstance(node, ast.Expr):
            with _AST_LOCK:
                code = compile(ast.Expression(node.value), FILENAME, "eval")
            value = eval(code, self._namespace)  # noqa: S307 - running the model's code is the job
            if value is not None:
                print(repr(value))
            return
        with _AST_LOCK:
            code = compile(ast.Module(body=[node], type_ignores=[]), FILENAME, "exec")
        exec(code, self._namespace)  # noqa: S102


def _user_traceback(exc: BaseException, source: list[str]) -> str:
    """The traceback of the model's code: its frames only, with its own source lines."""
    if isinstance(exc, SyntaxError):
        return "".join(traceback.format_exception_only(type(exc), exc))
    frames = []
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == FILENAME:
            n = frame.lineno or 0
            line = source[n - 1].strip() if 0 < n <= len(source) else None
            frames.append(traceback.FrameSummary(FILENAME, n, frame.name, line=line))
        elif frames:
            frames.append(frame)  # library frames below the model's code still help
    return (
        "Traceback (most recent call last):\n"
        + "".join(traceback.StackSummary.from_list(frames).format())
        + "".join(traceback.format_exception_only(type(exc), exc))
    )
