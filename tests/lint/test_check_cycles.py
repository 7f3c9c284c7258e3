"""The import-cycle check of `make lint` (scripts/check_cycles.py), on hand-made import graphs
and on a small package whose circle is spelled only with lazy and TYPE_CHECKING imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from check_cycles import import_cycles  # noqa: E402


def graph(*imports: tuple[str, str]) -> grimp.ImportGraph:
    built = grimp.ImportGraph()
    for importer, imported in imports:
        built.add_module(importer)
        built.add_module(imported)
        built.add_import(importer=importer, imported=imported)
    return built


def test_a_chain_is_no_cycle() -> None:
    assert import_cycles(graph(("a", "b"), ("b", "c"), ("a", "c"))) == []


def test_circles_of_any_length_are_found_once_each() -> None:
    found = import_cycles(
        graph(("a", "b"), ("b", "a"), ("c", "d"), ("d", "e"), ("e", "c"), ("e", "a"), ("f", "c"))
    )
    assert found == [["c", "d", "e"], ["a", "b"]]


def test_a_module_importing_itself_is_a_cycle() -> None:
    assert import_cycles(graph(("a", "a"), ("a", "b"))) == [["a"]]


def test_a_deep_chain_needs_no_recursion() -> None:
    names = [f"m{i}" for i in range(5000)]
    assert import_cycles(graph(*zip(names, names[1:], strict=False))) == []
    assert len(import_cycles(graph(*zip(names, names[1:] + names[:1], strict=True)))[0]) == 5000


def test_type_checking_and_function_level_imports_count(tmp_path: Path) -> None:
    package = tmp_path / "circle"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from circle import b\n"
    )
    (package / "b.py").write_text("def f():\n    from circle import a\n")
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_cycles.py"), "circle"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path)},
    )
    assert done.returncode == 1
    assert "import cycle among 2 modules: circle.a, circle.b" in done.stdout
