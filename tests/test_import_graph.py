"""The packages import each other in one direction only: no module imports itself back, directly
or through others — function-level imports included, since they only hide a cycle — and the
layers keep their order: ``demo`` → ``ultra`` → ``screening`` → ``data_zh`` → ``fusion`` (the
lowest floor: the registry shape and the pixel policy that every other package uses)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ultra", "fusion", "screening", "data_zh", "demo")
LAYERS = ("demo", "ultra", "screening", "data_zh", "fusion")
"""Top to bottom: a package may import only the packages below it."""
LOWER = {package: set(LAYERS[index + 1 :]) for index, package in enumerate(LAYERS)}
UPWARD_EXCEPTIONS = {("ultra.cli.demo", "demo")}
"""``ultra demo`` starts the app above it, lazily: the one way up."""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def _imported(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> Iterator[str]:
    """Every project module a module imports, at any depth of its code."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names
            ]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                yield name


def _lazy_exports(tree: ast.Module, known: set[str]) -> set[str]:
    """The modules a package ``__init__`` re-exports on first use (PEP 562: an ``_EXPORTS`` table
    of module name -> names): importing from the package reaches them as an eager import would."""
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in targets) and node.value is not None:
            return {module for module in ast.literal_eval(node.value) if module in known}
    return set()


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        imported = set(_imported(tree, name, path.name == "__init__.py", known))
        if path.name == "__init__.py":
            imported |= _lazy_exports(tree, known)
        graph[name] = imported - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
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


def _is_package_init(name: str, graph: dict[str, set[str]]) -> bool:
    return any(other.startswith(name + ".") for other in graph)


def _through_inits(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Module-to-module edges, with a package ``__init__`` replaced by what it re-exports: a
    package importing its own modules is no cycle of code, but importing through it counts."""
    inits = {name for name in graph if _is_package_init(name, graph)}

    def expand(target: str, seen: frozenset[str]) -> set[str]:
        if target not in inits:
            return {target}
        if target in seen:
            return set()
        return {leaf for inner in graph[target] for leaf in expand(inner, seen | {target})}

    return {
        name: {leaf for target in targets for leaf in expand(target, frozenset())} - {name}
        for name, targets in graph.items()
        if name not in inits
    }


def test_lazy_package_exports_count_as_imports():
    """``fusion`` loads its names on first use; the graph must still see what it re-exports."""
    graph = import_graph()
    assert "fusion.pixels" in graph["fusion"], sorted(graph["fusion"])


def test_no_module_imports_itself_back():
    code = _through_inits(import_graph())
    found = cycles(code)
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_subpackages_of_ultra_form_no_cycle():
    graph = import_graph()

    def area(name: str) -> str:
        return ".".join(name.split(".")[:2])

    areas: dict[str, set[str]] = {}
    for name, targets in graph.items():
        areas.setdefault(area(name), set()).update(area(t) for t in targets if area(t) != area(name))
    found = cycles(areas)
    assert not found, "subpackage cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


@pytest.mark.parametrize("package", sorted(LOWER))
def test_lower_packages_never_import_higher_ones(package):
    graph = import_graph()
    allowed = LOWER[package] | {package}
    bad = {
        f"{name} -> {target}"
        for name, targets in graph.items()
        if name.split(".")[0] == package
        for target in targets
        if target.split(".")[0] not in allowed and (name, target.split(".")[0]) not in UPWARD_EXCEPTIONS
    }
    assert not bad, "\n".join(sorted(bad))


def test_ultra_imports_demo_only_from_its_cli_command():
    """``demo`` sits above ``ultra``; the one way down is ``ultra demo`` starting it, lazily."""
    graph = import_graph()
    bad = {
        f"{name} -> {target}"
        for name, targets in graph.items()
        if name.split(".")[0] == "ultra" and name != "ultra.cli.demo"
        for target in targets
        if target.split(".")[0] == "demo"
    }
    assert not bad, "\n".join(sorted(bad))


def test_the_cli_starts_without_torch():
    """``ultra --help`` stays fast: commands import torch, timm and transformers only when they run."""
    import subprocess
    import sys

    probe = "import sys, ultra.cli.main; print(sorted(m for m in ('torch', 'timm', 'transformers') if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"imported at CLI start-up: {result.stdout.strip()}"
