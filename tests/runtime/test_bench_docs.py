"""The published benchmark tables are the ones their committed ``bench.json`` gives (pure)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from conveyor.runtime.bench import table

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "benchmark.md"


def _published() -> tuple[Path, dict]:
    match = re.search(r"docs/results/[\w.-]+\.json", DOC.read_text())
    assert match, "docs/benchmark.md names the bench.json its tables come from"
    path = ROOT / match.group(0)
    return path, json.loads(path.read_text())


def test_the_results_say_what_was_measured_and_how() -> None:
    path, result = _published()
    assert result["commit"], f"{path} records the commit it measured"
    assert result["command"].startswith("conveyor bench"), f"{path} records its command line"
    assert result["command"] in DOC.read_text()


def test_the_docs_tables_match_the_json() -> None:
    _, result = _published()
    doc, readme = DOC.read_text(), (ROOT / "README.md").read_text()
    latency = table.latency_tables(result)
    assert latency in doc and latency in readme
    assert table.targets_table(result) in doc
    if result.get("load"):
        assert table.load_table(result) in doc
