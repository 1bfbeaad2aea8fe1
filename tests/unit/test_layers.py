"""Layering kept honest: only migrator.cli may import click or rich (parse, call, render)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import migrator

pytestmark = pytest.mark.unit

PACKAGE = Path(migrator.__file__).parent
UI_LIBRARIES = {"click", "rich"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


CORE_MODULES = sorted(
    p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if p.name != "cli.py"
)


@pytest.mark.parametrize("module", CORE_MODULES)
def test_only_cli_renders(module: str) -> None:
    assert not imported_roots(PACKAGE / module) & UI_LIBRARIES


def test_core_modules_do_not_print() -> None:
    offenders = []
    for module in CORE_MODULES:
        path = PACKAGE / module
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                offenders.append(f"{module}:{node.lineno}")
    assert offenders == []
