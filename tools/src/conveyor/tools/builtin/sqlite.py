"""The sqlite tool: the database opens at ``start``; the query runs the moment ``query`` closes."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any, ClassVar

from conveyor.tools._tool import Reject, Result, Tool
from conveyor.tools.builtin._fields import top_level_fields
from conveyor.tools.units import ParseError, Unit


class SqliteTool(Tool):
    """Runs one SQL query against a configured SQLite database.

    Config: ``database`` (a path; default ``:memory:``), ``readonly`` (default true: the file
    is opened ``mode=ro`` and ``PRAGMA query_only`` is set), ``max_rows`` (default 100).
    """

    name: ClassVar[str] = "sqlite"
    description: ClassVar[str] = "Run one SQL query against the SQLite database and return rows."
    parameters: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"query": {"type": "string", "description": "One SQL statement."}},
        "required": ["query"],
    }

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config=config or {})
        self._conn: sqlite3.Connection | None = None
        self._open_error: str | None = None
        self._result: Result | None = None

    async def start(self) -> None:
        try:
            self._conn = await asyncio.to_thread(self._connect)
        except sqlite3.Error as exc:
            self._open_error = f"cannot open the database: {exc}"

    def _connect(self) -> sqlite3.Connection:
        database = str(self.config.get("database", ":memory:"))
        readonly = bool(self.config.get("readonly", True))
        if readonly and database != ":memory:":
            uri = Path(database).resolve().as_uri() + "?mode=ro"
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        else:
            conn = sqlite3.connect(database, check_same_thread=False)
        if readonly:
            conn.execute("PRAGMA query_only = ON")
        return conn

    async def feed(self, unit: Unit) -> Reject | None:
        if isinstance(unit, ParseError):
            return Reject(unit.message)
        for key, value in top_level_fields(unit):
            if key == "query" and self._result is None:
                if not isinstance(value, str):
                    return Reject("`query` must be a string")
                self._result = await self._query(value)
        return None

    async def _query(self, sql: str) -> Result:
        if self._conn is None and self._open_error is None:
            await self.start()
        if self._conn is None:
            return Result(self._open_error or "the database is not open", is_error=True)
        try:
            columns, rows, more = await asyncio.to_thread(self._execute, self._conn, sql)
        except (sqlite3.Error, sqlite3.Warning, ValueError) as exc:
            return Result(f"sqlite error: {exc}", is_error=True)
        lines = [" | ".join(columns)] if columns else []
        lines += [" | ".join("NULL" if v is None else str(v) for v in row) for row in rows]
        if more:
            lines.append(f"... (only the first {len(rows)} rows)")
        content = "\n".join(lines) if lines else "OK (no rows)"
        return Result(content, data={"columns": columns, "rows": [list(r) for r in rows]})

    def _execute(
        self, conn: sqlite3.Connection, sql: str
    ) -> tuple[list[str], list[tuple[Any, ...]], bool]:
        max_rows = int(self.config.get("max_rows", 100))
        cur = conn.execute(sql)
        rows = cur.fetchmany(max_rows + 1)
        columns = [d[0] for d in cur.description] if cur.description else []
        if not bool(self.config.get("readonly", True)):
            conn.commit()
        return columns, rows[:max_rows], len(rows) > max_rows

    async def finish(self) -> Result:
        self._close()
        return self._result or Result("missing `query`", is_error=True)

    async def cancel(self) -> None:
        self._close()

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
