"""The shipped packages stay made of short functions: a function over 80 lines usually does
several jobs at once, so at most a handful may exist, and the failure names each with its length."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ultra", "fusion", "screening", "data_zh", "demo")
MAX_LINES = 80
MAX_LONG_FUNCTIONS = 5


def long_functions(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> list[tuple[str, int]]:
    """Every function (methods and nested ones too) over ``MAX_LINES`` lines as
    ``("path:line name", length)``, longest first."""
    found = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = node.end_lineno - node.lineno + 1
                    if length > MAX_LINES:
                        where = f"{path.relative_to(root)}:{node.lineno} {node.name}"
                        found.append((where, length))
    return sorted(found, key=lambda item: -item[1])


def test_long_functions_are_counted(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    (package / "mod.py").write_text(f"def long():\n{body}\n\n\ndef short():\n    return 1\n", encoding="utf-8")
    assert long_functions(tmp_path, ("pkg",)) == [("pkg/mod.py:1 long", MAX_LINES + 1)]


def test_at_most_five_functions_over_80_lines():
    found = long_functions()
    listing = "\n".join(f"  {length:4d} lines  {where}" for where, length in found)
    assert len(found) <= MAX_LONG_FUNCTIONS, (
        f"{len(found)} functions over {MAX_LINES} lines (at most {MAX_LONG_FUNCTIONS}); split those "
        f"that mix jobs:\n{listing}"
    )
