"""Fail on any import cycle among the ``conveyor.*`` modules.

Every import counts, as import-linter counts it: module level, inside functions, and under
``TYPE_CHECKING`` — a circle in the design is a circle, however it is spelled. The graph comes
from grimp (import-linter's own graph library); the cycles are its strongly connected components
of more than one module (or a module importing itself).

    python scripts/check_cycles.py [PACKAGE ...]     # default: conveyor
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable

import grimp


def strongly_connected(
    nodes: Iterable[str], successors: Callable[[str], Iterable[str]]
) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively (no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(successors(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(successors(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Every set of modules that import each other in a circle, each sorted, largest first."""

    def imported_by(module: str) -> set[str]:
        return graph.find_modules_directly_imported_by(module)

    modules = sorted(graph.modules)
    cycles = [
        component
        for component in strongly_connected(modules, imported_by)
        if len(component) > 1 or component[0] in imported_by(component[0])
    ]
    return sorted(cycles, key=lambda c: (-len(c), c))


def _example_chain(graph: grimp.ImportGraph, cycle: list[str]) -> str:
    """One circle through the component's first module, for the message."""
    first = cycle[0]
    for target in sorted(graph.find_modules_directly_imported_by(first)):
        if target in cycle:
            back = graph.find_shortest_chain(importer=target, imported=first)
            if back:
                return " -> ".join([first, *back])
    return first


def main(argv: list[str]) -> int:
    packages = argv or ["conveyor"]
    graph = grimp.build_graph(*packages, cache_dir=None)
    cycles = import_cycles(graph)
    for cycle in cycles:
        print(f"import cycle among {len(cycle)} modules: {', '.join(cycle)}")
        print(f"  e.g. {_example_chain(graph, cycle)}")
    if cycles:
        print(f"{len(cycles)} import cycle(s) in {', '.join(packages)}", file=sys.stderr)
        return 1
    print(f"no import cycles in {', '.join(packages)} ({len(graph.modules)} modules)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
