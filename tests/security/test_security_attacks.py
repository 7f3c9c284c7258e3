"""The threat model of docs/security.md, attacked through the public OpenAI API of a real server.

Every attack is a hosted call replayed through the real engine, sent to each set-up of
conftest.py (root, a normal user, the operator's pod). Each asserts containment with the
evidence the attack itself prints: the error text, the missing file, the refused connection.
Numbers refer to the threat model's items.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import LIMITS, Setup
from security_kit import NAME_ITSELF, gone, hosted, python

# The first test of each set-up waits for its engine; on a loaded host that alone can pass
# the default per-test timeout.
pytestmark = [pytest.mark.engine, pytest.mark.timeout(1500)]


# -- 1. secrets ---------------------------------------------------------------------------------


def test_1_no_process_environment_holds_a_secret(setup: Setup) -> None:
    out = python(
        setup,
        "import os\n"
        "pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
        "def environ(p):\n"
        "    try:\n"
        "        return open(f'/proc/{p}/environ', 'rb').read()\n"
        "    except OSError as e:\n"
        "        return e.strerror.encode()\n"
        f"leaks = [p for p in pids if {setup.secret.encode()!r} in environ(p)]\n"
        "print('pids', pids, 'parent', os.getppid(), 'leaks', leaks, 'env', dict(os.environ))\n",
    )
    # Only the call's own init (1) and worker (2) exist for it; the sidecar is not among them.
    assert out == "pids [1, 2] parent 1 leaks [] env {}\n", out
    assert setup.secret not in out


def test_1_mounted_secrets_the_token_and_the_server_files_are_out_of_reach(setup: Setup) -> None:
    paths = [
        str(setup.secret_file),
        "/var/run/secrets/kubernetes.io/serviceaccount/token",
        str(setup.config),  # the server's tools.yaml
        "/root/.bash_history",
        "/etc/shadow",
    ]
    out = python(
        setup,
        "import os\n"
        f"for path in {paths!r}:\n"
        "    try:\n"
        "        print(path, repr(open(path).read()))\n"
        "    except OSError as e:\n"
        "        print(path, type(e).__name__)\n"
        f"print(sorted(os.listdir({str(setup.secret_file.parent.parent)!r})))\n",
    )
    assert setup.secret not in out, out
    lines = out.splitlines()
    assert lines[0].endswith("FileNotFoundError"), out  # its directory is covered, empty
    assert lines[1].endswith("FileNotFoundError") and lines[2].endswith("FileNotFoundError"), out
    assert lines[3].endswith("FileNotFoundError"), out
    assert lines[4].endswith(("PermissionError", "FileNotFoundError")), out
    assert lines[5] == "['readme.txt', 'secret']", out  # what was shown stays readable


# -- 2. network ---------------------------------------------------------------------------------


def test_2_no_network_not_even_loopback(setup: Setup) -> None:
    port = int(setup.base_url.rsplit(":", 1)[1])
    targets = [("127.0.0.1", port), ("169.254.169.254", 80), ("10.0.0.1", 443)]
    if setup.sidecar_port is not None:
        targets.append(("127.0.0.1", setup.sidecar_port))
    out = python(
        setup,
        "import socket\n"
        f"for target in {targets!r}:\n"
        "    try:\n"
        "        socket.create_connection(target, 2).close()\n"
        "        print(target, 'CONNECTED')\n"
        "    except OSError as e:\n"
        "        print(target, e.strerror)\n",
    )
    assert "CONNECTED" not in out, out
    assert out.count("Network is unreachable") == len(targets), out


def test_2_the_embedded_sidecar_socket_cannot_be_named(setup: Setup) -> None:
    out = python(
        setup,
        "import glob\nprint(glob.glob('/tmp/conveyor-sidecar-*') + glob.glob('/run/*'))\n",
    )
    assert out == "['/run/lock']\n", out  # the call's own scratch; no socket of the host


# -- 3. files -----------------------------------------------------------------------------------

PLACES = ["/tmp", "/var/tmp", "/dev/shm", "/run/lock", "."]


def test_3_no_file_survives_into_the_next_call(setup: Setup) -> None:
    written = python(
        setup,
        f"for place in {PLACES!r}:\n"
        "    open(place + '/left-behind', 'w').write('x')\n"
        "print('written')\n",
    )
    assert written == "written\n", written
    seen = python(
        setup, f"import os\nprint([os.path.exists(p + '/left-behind') for p in {PLACES!r}])\n"
    )
    assert seen == "[False, False, False, False, False]\n", seen


def test_3_nothing_outside_the_scratch_space_is_writable(setup: Setup) -> None:
    targets = ["/etc/x", "/usr/x", os.path.realpath(os.path.dirname(os.__file__)) + "/x", "/x"]
    out = python(
        setup,
        f"for path in {targets!r}:\n"
        "    try:\n"
        "        open(path, 'w')\n"
        "        print(path, 'WRITTEN')\n"
        "    except OSError as e:\n"
        "        print(path, e.strerror)\n",
    )
    assert "WRITTEN" not in out, out
    assert out.count("Read-only file system") == len(targets), out


# -- 4. other processes -------------------------------------------------------------------------


def test_4_killing_the_parent_and_tracing_init_do_nothing(setup: Setup) -> None:
    out = python(
        setup,
        "import ctypes, os, signal, time\n"
        "os.kill(os.getppid(), signal.SIGKILL)\n"
        "time.sleep(0.5)\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "print('ptrace', libc.ptrace(16, 1, 0, 0), os.strerror(ctypes.get_errno()))\n"
        f"try:\n    os.kill({setup.runtime.pid}, signal.SIGKILL)\n"
        "except OSError as e:\n    print('runtime', type(e).__name__)\n"
        "print('alive', os.getppid())\n",
    )
    assert out == "ptrace -1 Operation not permitted\nruntime ProcessLookupError\nalive 1\n", out
    assert setup.runtime.poll() is None
    if setup.sidecar is not None:
        assert setup.sidecar.poll() is None
    # The server keeps serving tool calls.
    assert python(setup, "print(6 * 7)") == "42\n"


# -- 5. totals over all of a call's processes, and its lifetime ---------------------------------


def test_5_memory_is_a_total_over_forked_children(setup: Setup) -> None:
    # Three children of 100 MiB each: every one is within the per-process limit, together not.
    out = python(
        setup,
        "import os, time\n"
        "for _ in range(3):\n"
        "    if os.fork() == 0:\n"
        "        block = bytearray(100 << 20)\n"
        "        time.sleep(20)\n"
        "        os._exit(0)\n"
        "time.sleep(20)\n"
        "print('survived')\n",
    )
    assert "memory limit: the call's processes together reached 256 MiB" in out, out


def test_5_processes_are_counted_per_call(setup: Setup) -> None:
    out = python(
        setup,
        NAME_ITSELF + "import os, time\n"
        "n = 0\n"
        "try:\n"
        "    while True:\n"
        "        if os.fork() == 0:\n"
        "            name_itself('cvy-forked')\n"
        "            time.sleep(60)\n"
        "            os._exit(0)\n"
        "        n += 1\n"
        "except OSError as e:\n"
        "    print(n, e.strerror)\n",
    )
    count, _, error = out.strip().partition(" ")
    assert error == "Resource temporarily unavailable" and int(count) < LIMITS["nproc"], out
    # As a normal user the engine's threads share the uid: they are not counted, so the call
    # could fork at all; and nothing it forked outlives it.
    assert int(count) > 0, out
    assert gone("cvy-forked")


def test_5_orphans_do_not_outlive_the_call(setup: Setup) -> None:
    out = python(
        setup,
        NAME_ITSELF + "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        name_itself('cvy-orphan')\n"
        "        time.sleep(120)\n"
        "    os._exit(0)\n"
        "time.sleep(0.5)\n"
        "print('left an orphan')\n",
    )
    assert out == "left an orphan\n", out
    assert gone("cvy-orphan")


def test_5_disk_is_a_total_over_every_writable_place(setup: Setup) -> None:
    out = python(
        setup,
        "written = 0\n"
        "try:\n"
        "    for i, place in enumerate(['/tmp', '/var/tmp', '/dev/shm'] * 4):\n"
        "        with open(f'{place}/fill-{i}', 'wb') as f:\n"
        "            f.write(bytes(8 << 20))\n"
        "        written += 8\n"
        "except OSError as e:\n"
        "    print(written, e.strerror)\n",
    )
    written, _, error = out.strip().partition(" ")
    assert error == "No space left on device" and int(written) <= LIMITS["disk_mb"], out


def test_5_output_is_truncated(setup: Setup) -> None:
    out = python(setup, "print('x' * 1_000_000)")
    assert "[output truncated: " in out and len(out) < 2 * LIMITS["max_output_bytes"], len(out)


# -- 7. one call cannot slow the others beyond its own limits -----------------------------------


def test_5_7_cpu_is_a_total_and_an_ordinary_request_completes_meanwhile(setup: Setup) -> None:
    burn = (
        NAME_ITSELF + "import os\n"
        "for _ in range(3):\n"
        "    if os.fork() == 0:\n"
        "        name_itself('cvy-burner')\n"
        "        while True: pass\n"
        "while True: pass\n"
    )
    with ThreadPoolExecutor(2) as pool:
        attack = pool.submit(python, setup, burn)
        time.sleep(1.0)  # the burners are running
        ordinary = pool.submit(hosted, setup, "calculator", {"expression": "6 * 7"})
        assert ordinary.result(timeout=120) == "42"
        out = attack.result(timeout=180)
    # The CPU total stops it; on a machine so loaded that the burners get too little CPU in
    # `wall_seconds`, the wall clock does: either way the call ends and takes its processes.
    assert "cpu limit: the call's processes together" in out or "timeout" in out, out
    assert gone("cvy-burner")


# -- 6. only the tools the server enables and the request allows, plan steps included -----------


def plan(setup: Setup, lines: list[str], allow: list[str] | None) -> str:
    return hosted(setup, "planner", {"plan": "\n".join(lines) + "\n"}, allow=allow)


def test_6_a_plan_step_may_not_call_a_tool_the_request_does_not_allow(setup: Setup) -> None:
    out = plan(setup, ['$1 = python("print(1)")'], allow=["planner"])
    assert "unknown tool 'python' for this plan (none)" in out, out


def test_6_a_plan_step_may_not_call_a_tool_the_server_does_not_enable(setup: Setup) -> None:
    out = plan(setup, ['$1 = search("x")'], allow=None)
    assert "unknown tool 'search' for this plan (calculator, python)" in out, out


def test_6_a_tool_the_server_does_not_enable_is_not_run(setup: Setup) -> None:
    out = hosted(setup, "search", {"query": "x"})
    assert "unknown tool 'search' (available: calculator, planner, python)" in out, out


def test_6_a_plan_step_runs_with_its_own_tool_s_network_setting(setup: Setup) -> None:
    port = int(setup.base_url.rsplit(":", 1)[1])
    code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), 2)\n"
    out = plan(setup, [f"$1 = python({json.dumps(code)})", '$2 = calculator("1 + 1")'], None)
    # The planner may reach the network; its python step, like any python call, may not.
    assert "Network is unreachable" in out and "$2 = calculator: 2" in out, out
