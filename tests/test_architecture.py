"""The rooms of the code and the direction of their imports (docs/architecture.md), checked from the source.

Every import counts: at module level, inside functions (lazy imports), and under TYPE_CHECKING, since a
cycle hidden in a function is still a cycle a reader has to untangle."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rtprune", "pipeline", "jobs")

# Room -> the rooms it may import (besides itself). A module belongs to the longest room that prefixes it.
ALLOWED: dict[str, set[str]] = {
    "rtprune": set(),  # the pruning core: torch only
    "rtprune.deepseek": {"rtprune"},
    # the contract, and create_engine, which builds either engine (lazily: neither loads with the contract)
    "rtprune.engines": {"rtprune", "rtprune.deepseek", "rtprune.engines.hf", "rtprune.engines.vllm"},
    "rtprune.models": {"rtprune", "rtprune.deepseek"},
    "rtprune.engines.hf": {"rtprune", "rtprune.deepseek", "rtprune.engines", "rtprune.models"},
    "rtprune.engines.vllm": {"rtprune", "rtprune.deepseek", "rtprune.engines", "rtprune.models"},
    "rtprune.evaluation": {"rtprune", "rtprune.engines", "rtprune.engines.hf"},
    # config (which holds the engines' typed settings), schema, summary, redact, samples
    "pipeline": {"rtprune", "rtprune.engines", "rtprune.engines.vllm"},
    "pipeline.store": {"pipeline", "rtprune.engines"},
    # rtprune.deepseek: the grounding format and its geometry, read into a page's layout
    "pipeline.stages": {
        "pipeline",
        "pipeline.store",
        "rtprune",
        "rtprune.deepseek",
        "rtprune.engines",
        "rtprune.engines.vllm",
    },
    "pipeline.cost": {"pipeline", "pipeline.stages", "rtprune.engines"},
    # pipeline.stages: the page images of the viewer are rendered by the render stage's isolated children
    "pipeline.export": {"pipeline", "pipeline.store", "pipeline.stages"},
    "pipeline.driver": {"pipeline", "pipeline.store", "pipeline.stages", "pipeline.cost", "rtprune.engines"},
    "jobs": {
        "jobs",
        "pipeline",
        "pipeline.store",
        "pipeline.cost",
        "pipeline.driver",
        "pipeline.export",
        "rtprune",
        "rtprune.engines",
        "rtprune.evaluation",
    },
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(path: Path, name: str, modules: dict[str, Path]) -> Iterator[str]:
    """The project modules `path` imports anywhere in its body (a `from a import b` of a submodule b
    counts as importing a.b)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                base = ".".join(anchor[: len(anchor) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in modules:
                    yield sub
                elif base in modules:
                    yield base


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: set(_imports(path, name, modules)) - {name} for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _room(module: str) -> str:
    return max((room for room in ALLOWED if module == room or module.startswith(room + ".")), key=len)


def test_the_cycle_finder_finds_a_lazy_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_the_projects_modules():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles (module-level or inside functions): " + "; ".join(
        " <-> ".join(c) for c in cycles
    )


def test_every_import_goes_in_an_allowed_direction():
    wrong = [
        f"{module} ({_room(module)}) imports {target} ({_room(target)})"
        for module, targets in sorted(_graph().items())
        for target in sorted(targets)
        if _room(target) != _room(module) and _room(target) not in ALLOWED[_room(module)]
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_module_opens_with_what_it_is(package):
    missing = [
        str(path.relative_to(ROOT))
        for path in (ROOT / package).rglob("*.py")
        if path.stat().st_size and not ast.get_docstring(ast.parse(path.read_text()))
    ]
    assert not missing, f"modules without an opening docstring: {missing}"


MAX_FUNCTION_LINES = 60


def test_no_function_is_longer_than_the_limit():
    long = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for folder in (*PACKAGES, "tools", "tests", "infra")
        for path in (ROOT / folder).rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, "functions over the limit (benchmarks excepted):\n" + "\n".join(long)
