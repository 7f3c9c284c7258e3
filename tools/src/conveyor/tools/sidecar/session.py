"""A session: one worker that serves the invocations of one key in turn, keeping the tool's state.

To a job, a session is its worker source: ``acquire`` waits for the session's turn and gives
the session's worker (spawning one from the pool the first time, or after the last one died);
``release`` passes the turn on. A session ends when its owner says so (``end_session``), after
``session_idle_seconds`` without an invocation, or when its worker dies with no one waiting.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from conveyor.tools.protocol import Reason
from conveyor.tools.sidecar.job import WorkerSource
from conveyor.tools.sidecar.process import SHUTDOWN, WorkerExit, WorkerProcess

_IDLE = WorkerExit(Reason.RECYCLED, "recycled: session idle")
_ENDED = WorkerExit(Reason.RECYCLED, "recycled: session ended")


class Session:
    """The worker of one session key, and whose turn it is."""

    keeps_state = True

    def __init__(
        self,
        key: str,
        tool: str,
        workers: WorkerSource,
        idle_seconds: float,
        on_empty: Callable[[Session], None],
    ) -> None:
        self.key = key
        self.tool = tool
        self.worker: WorkerProcess | None = None
        self._workers = workers
        self._idle_seconds = idle_seconds
        self._on_empty = on_empty
        self._busy = False  # a job holds the turn
        self._turns: deque[asyncio.Future[None]] = deque()
        self._idle: asyncio.TimerHandle | None = None
        self._ended = False

    # -- the worker source ---------------------------------------------------------------------

    def acquire_nowait(self) -> WorkerProcess | None:
        worker = self.worker
        if self._busy or self._turns or worker is None or worker.exit is not None:
            return None
        self._stop_idle()
        self._busy = True
        return worker

    async def acquire(self) -> WorkerProcess:
        self._stop_idle()
        if self._busy or self._turns:
            turn = asyncio.get_running_loop().create_future()
            self._turns.append(turn)
            try:
                await turn
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():
                    self._pass_turn()  # handed the turn as the job gave up
                elif turn in self._turns:
                    self._turns.remove(turn)
                raise
        self._busy = True
        try:
            if self.worker is None or self.worker.exit is not None:
                self.worker = await self._workers.acquire()
        except asyncio.CancelledError:
            self._pass_turn()
            raise
        return self.worker

    def release(self, worker: WorkerProcess, keep: bool) -> None:
        if not keep or self._ended:
            worker.kill(_ENDED if self._ended else WorkerExit(Reason.RECYCLED, "recycled"))
            if self.worker is worker:
                self.worker = None
        self._pass_turn()

    # -- ending --------------------------------------------------------------------------------

    def end(self) -> None:
        """The owner is done: free the worker now, or after the call that holds it."""
        self._ended = True
        if not self._busy and not self._turns:
            self._drop(_ENDED)

    def close(self) -> None:
        """The sidecar stops."""
        self._stop_idle()
        for turn in self._turns:
            turn.cancel()
        if self.worker is not None:
            self.worker.kill(SHUTDOWN)
            self.worker = None

    def _pass_turn(self) -> None:
        self._busy = False
        while self._turns:
            turn = self._turns.popleft()
            if not turn.done():
                turn.set_result(None)
                self._busy = True
                return
        if self._ended or self.worker is None:
            self._drop(_ENDED)
        else:
            self._idle = asyncio.get_running_loop().call_later(self._idle_seconds, self._expire)

    def _expire(self) -> None:
        self._idle = None
        if not self._busy and not self._turns:
            self._drop(_IDLE)

    def _drop(self, why: WorkerExit) -> None:
        self._stop_idle()
        if self.worker is not None:
            self.worker.kill(why)
            self.worker = None
        self._on_empty(self)

    def _stop_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
