"""The sandbox supervisor's watch: totals over every process of a call, and how it ended.

Rlimits hold per process: forked children each get their own memory and CPU. Without a
delegated cgroup, the supervisor (outside the call's pid namespace, invisible to it) adds up
what the fresh ``/proc`` of that namespace shows — every process of the call — ten times a
second: proportional set size (shared pages counted once) and CPU time (each live process's
own and that of the children it reaped, so nothing that ended is lost). Over a limit, it kills
the namespace's init, which ends every process of the call at once, and exits with a code the
pool maps to a reason. Between two looks the per-process rlimits still bound every process.
"""

from __future__ import annotations

import os
import select
import signal

PERIOD = 0.1
EXIT_MEMORY = 86  # the supervisor's exit code when the call's memory total went over
EXIT_CPU = 87  # ... when the call's CPU total went over
_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def status_to_code(status: int) -> int:
    """A wait status as an exit code a parent can turn back into it (128 + signal)."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def exit_reason(status: int, memory_mb: int, cpu_seconds: float) -> str | None:
    # cpu_seconds: the call's own limit; the supervisor held the call to it (or to less).
    """The reason for a supervisor's own exit codes; None for an ordinary exit."""
    if not os.WIFEXITED(status):
        return None
    code = os.WEXITSTATUS(status)
    if code == EXIT_MEMORY:
        return f"memory limit: the call's processes together reached {memory_mb} MiB"
    if code == EXIT_CPU:
        return f"cpu limit: the call's processes together used their {cpu_seconds:g} s of CPU"
    return None


def usage() -> tuple[int, float]:
    """(PSS bytes, CPU seconds) of every process this ``/proc`` shows."""
    pss = 0
    ticks = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            # utime, stime, cutime, cstime: fields 14-17 of stat(5), 11-14 after the name.
            ticks += sum(int(v) for v in fields[11:15])
            pss += _memory(name)
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue  # it ended while we looked
    return pss, ticks / _TICK


def _memory(pid: str) -> int:
    """PSS; a process that made itself undumpable hides it, and is charged its whole RSS."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except PermissionError:
        pass
    with open(f"/proc/{pid}/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE


def supervise(init: int, built: int, grants: int, memory_mb: int, cpu_seconds: float) -> None:
    """Wait for ``init``, enforcing the totals; exit as it did.

    ``grants`` carries the worker's "N more seconds for this call" as each call starts. The
    worker may lie after running untrusted code, so a grant counts from the total measured
    here, and never beyond ``cpu_seconds``, the cap for the worker's whole life.
    """
    pidfd = os.pidfd_open(init)
    waiting = [pidfd, built, grants]
    watching = False  # until init has mounted the namespace's /proc, ours shows the host's
    memory = memory_mb << 20
    cpu_limit = cpu_seconds
    while True:
        ready, _, _ = select.select(waiting, [], [], PERIOD)
        if pidfd in ready:
            _, status = os.waitpid(init, 0)
            os._exit(status_to_code(status))
        if built in ready:
            watching = os.read(built, 1) == b"1"
            waiting.remove(built)
            continue
        if grants in ready:
            granted = _last_grant(os.read(grants, 4096))
            if granted is None:
                waiting.remove(grants)  # the worker closed it: its last grant stands
            else:
                cpu_limit = min(cpu_seconds, usage()[1] + granted)
        if not watching:
            continue
        pss, cpu = usage()
        if pss > memory:
            _end(init, EXIT_MEMORY)
        if cpu > cpu_limit:
            _end(init, EXIT_CPU)


def _last_grant(data: bytes) -> float | None:
    """The last well-formed grant in ``data`` (0 for garbage); None at the pipe's end."""
    if not data:
        return None
    try:
        return max(0.0, float(data.split()[-1]))
    except (ValueError, IndexError):
        return 0.0


def _end(init: int, code: int) -> None:
    os.kill(init, signal.SIGKILL)  # init's death kills every process in its namespace
    os.waitpid(init, 0)
    os._exit(code)
