"""Layering kept honest: only the modules under migrator/cli/ may import click or rich (parse,
call, render), and `migrator export` does not load what only other commands need."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
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
    p.relative_to(PACKAGE).as_posix()
    for p in PACKAGE.rglob("*.py")
    if p.relative_to(PACKAGE).parts[0] != "cli"
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


def modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True)
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_the_export_command_loads_neither_rich_nor_the_other_stages() -> None:
    loaded = modules_after(
        "import click\n"
        "from migrator.cli import cli\n"
        "command = cli.get_command(click.Context(cli), 'export')\n"
        "assert command is not None and command.name == 'export'"
    )
    assert "migrator.cli.export" in loaded and "migrator.export" in loaded
    assert "rich" not in loaded
    assert "migrator.transform" not in loaded
    assert "migrator.importer" not in loaded
    assert "migrator.verify" not in loaded


def test_a_command_loads_only_its_own_module() -> None:
    loaded = modules_after(
        "from migrator.cli import main\n"
        "try:\n"
        "    main(['snapshot', 'list', '--help'])\n"
        "except SystemExit:\n"
        "    pass"
    )
    assert {m for m in loaded if m.startswith("migrator.cli.")} == {
        "migrator.cli.options", "migrator.cli.render", "migrator.cli.snapshot"}
    assert "rich" not in loaded
