"""The benchmark's SQLite database: a million generated orders, built once and cached.

The file lives in ``~/.cache/conveyor/bench/``. Sidecar workers run as their own unprivileged
uid when the sidecar runs as root, and they cannot enter root's home: ``shareable`` gives them
a hard link (or a copy) in a directory they can read, outside the ``/tmp`` they get privately.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

CACHE_DIR = Path.home() / ".cache" / "conveyor" / "bench"
ROWS = 1_000_000
VERSION = 1  # bump when the generated content changes
CITIES = (
    "Lisbon Porto Braga Coimbra Faro Madrid Barcelona Valencia Seville Bilbao Paris Lyon "
    "Marseille Berlin Hamburg Munich Milan Rome Naples Turin"
).split()
PRODUCTS = ("tea", "coffee", "cocoa", "biscuits", "jam", "honey", "olive oil", "cheese")


def _rows(count: int, seed: int) -> Iterator[tuple[int, str, str, int, float, str]]:
    rng = random.Random(seed)
    for _ in range(count):
        day = rng.randrange(3 * 365)  # 2022-01-01 .. 2024-12-30
        year, day_of_year = 2022 + day // 365, day % 365
        month = min(12, day_of_year // 31 + 1)
        date = f"{year}-{month:02d}-{day_of_year % 28 + 1:02d}"
        yield (
            rng.randrange(50_000),
            rng.choice(CITIES),
            rng.choice(PRODUCTS),
            rng.randint(1, 12),
            round(rng.uniform(1.5, 40.0), 2),
            date,
        )


def build(path: Path, rows: int = ROWS, seed: int = 7) -> Path:
    """Write the database to ``path`` (atomically: a half-built file is never left behind)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    with contextlib.closing(sqlite3.connect(partial)) as db:
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.execute(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, city TEXT, "
            "product TEXT, quantity INTEGER, unit_price REAL, ordered_at TEXT)"
        )
        db.executemany(
            "INSERT INTO orders (customer_id, city, product, quantity, unit_price, ordered_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            _rows(rows, seed),
        )
        db.commit()
    partial.chmod(0o644)
    partial.replace(path)
    return path


def cached(rows: int = ROWS, cache_dir: Path = CACHE_DIR) -> Path:
    """The cached database, built on first use (a few seconds)."""
    path = cache_dir / f"orders-v{VERSION}-{rows}.db"
    if not path.exists():
        build(path, rows)
    return path


def shareable(path: Path) -> tuple[Path, Path | None]:
    """A path of the same database that a worker running as another uid can open.

    Returns the path and a directory to delete afterwards (None when the original is used).
    """
    if os.geteuid() != 0:
        return path, None  # workers keep our uid: they can read our home
    # Not below /tmp: each worker sees its own private /tmp.
    base = next((d for d in ("/run", "/var/lib") if os.access(d, os.W_OK)), None)
    share = Path(tempfile.mkdtemp(prefix="conveyor-bench-", dir=base))
    share.chmod(0o755)
    target = share / path.name
    try:
        os.link(path, target)
    except OSError:
        shutil.copyfile(path, target)
        target.chmod(0o644)
    return target, share
