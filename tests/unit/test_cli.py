"""The command line, through click's runner: no servers involved."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from migrator import __version__
from migrator.cli import cli

pytestmark = pytest.mark.unit


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_help_lists_discover() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "discover" in result.output
    assert "--verbose" in result.output


def test_discover_help() -> None:
    result = CliRunner().invoke(cli, ["discover", "--help"])
    assert result.exit_code == 0
    assert "--context" in result.output and "--kubeconfig" in result.output


def test_discover_with_missing_kubeconfig_exits_2_without_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "missing-config"
    result = CliRunner().invoke(cli, ["discover", "--kubeconfig", str(missing), "--context", "x"])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == f"error: cannot read kubeconfig {missing}: no such file"
    assert [line for line in lines if line.startswith("error:")] == [lines[0]]
    assert "Traceback" not in result.output


def test_verbose_shows_the_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["-v", "discover", "--kubeconfig", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "Traceback" in result.stderr
    assert "KubeconfigNotFound" in result.stderr


def test_discover_unknown_context(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("contexts:\n- name: old\n  context: {cluster: old, user: old}\n")
    result = CliRunner().invoke(cli, ["discover", "--kubeconfig", str(config), "--context", "new"])
    assert result.exit_code == 2
    assert "context 'new' not found" in result.stderr and "(contexts: old)" in result.stderr
