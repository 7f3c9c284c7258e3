"""Root sidecars of one host claim disjoint worker uids (recycling kills a uid's processes)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conveyor.tools.sidecar.uid_block import CHUNK, claim


def everything(first: int, count: int) -> bool:
    return True


def test_sidecars_get_disjoint_blocks_whatever_their_size(tmp_path):
    lock_dir = str(tmp_path)
    a = claim(61000, 136, everything, lock_dir)
    b = claim(61000, 30, everything, lock_dir)
    c = claim(60000, 200, everything, lock_dir)  # a lower base reaches into a's chunks
    assert a and b and c
    assert a.first % CHUNK == 0 and a.first >= 61000
    blocks = [set(a.uids()), set(b.uids()), set(c.uids())]
    assert all(len(block) == n for block, n in zip(blocks, (136, 30, 200), strict=True))
    assert not blocks[0] & blocks[1] and not blocks[0] & blocks[2] and not blocks[1] & blocks[2]
    a.release()
    again = claim(61000, 136, everything, lock_dir)
    assert again is not None and again.first == a.first  # a released block is free again


def test_no_block_beyond_the_mapped_uids(tmp_path):
    lock_dir = str(tmp_path)
    first = claim(61000, 64, lambda start, n: start + n <= 61056 + 128, lock_dir)
    second = claim(61000, 64, lambda start, n: start + n <= 61056 + 128, lock_dir)
    assert first is not None and second is not None
    assert claim(61000, 64, lambda start, n: start + n <= 61056 + 128, lock_dir) is None


def test_a_dead_sidecars_block_is_free_at_once(tmp_path):
    """The lock dies with the process, however it ends (here: SIGKILL)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from conveyor.tools.sidecar.uid_block import claim
            block = claim(61000, 64, lambda *_: True, {str(tmp_path)!r})
            print(block.first, flush=True)
            time.sleep(600)
        """)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        held = int(holder.stdout.readline())
        mine = claim(61000, 64, everything, str(tmp_path))
        assert mine is not None and mine.first != held
        mine.release()
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    after = claim(61000, 64, everything, str(tmp_path))
    assert after is not None and after.first == held


def test_without_a_lock_directory_the_configured_uids_are_used(tmp_path):
    (tmp_path / "file").write_text("")
    block = claim(61000, 10, everything, str(tmp_path / "file" / "locks"))
    assert block is not None and block.first == 61000 and len(block.uids()) == 10
    assert claim(61000, 10, lambda *_: False, str(tmp_path / "file" / "locks")) is None
