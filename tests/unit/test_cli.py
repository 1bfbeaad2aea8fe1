"""The command line, through click's runner: no servers involved."""
from __future__ import annotations

import contextlib
import io
import threading
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from rich.console import Console

from migrator import __version__
from migrator.cli import COMMANDS, cli, load_command
from migrator.cli.render import _ProgressBars, progress_bars

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


def test_help_lists_every_command_with_its_short_help() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    lines = result.output.split("Commands:")[1].splitlines()
    listed = [line.split()[0] for line in lines if line[:3].strip() and line[:2] == "  "]
    assert listed == sorted(COMMANDS)
    assert "Snapshot every object of the cluster --from into a store." in result.output


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_lazy_command_has_the_name_it_is_listed_under(name: str) -> None:
    assert load_command(name).name == name


def test_an_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["exprot"])
    assert result.exit_code == 2
    assert "No such command 'exprot'" in result.stderr


def test_export_help_offers_processes() -> None:
    result = CliRunner().invoke(cli, ["export", "-h"])
    assert result.exit_code == 0
    assert "--processes" in result.output and "0<=x<=64" in result.output


def test_discover_help() -> None:
    result = CliRunner().invoke(cli, ["discover", "--help"])
    assert result.exit_code == 0
    assert "--from" in result.output and "--to" in result.output
    assert "--kubeconfig" in result.output


def test_discover_with_missing_kubeconfig_exits_2_without_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "missing-config"
    result = CliRunner().invoke(cli, ["discover", "--kubeconfig", str(missing), "--from", "x"])
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
    result = CliRunner().invoke(cli, ["discover", "--kubeconfig", str(config), "--from", "new"])
    assert result.exit_code == 2
    assert "context 'new' not found" in result.stderr and "(contexts: old)" in result.stderr


def refresh_threads() -> list[threading.Thread]:
    """rich's live-display refresh threads still running."""
    return [t for t in threading.enumerate() if type(t).__name__ == "_RefreshThread"]


def test_progress_bars_start_on_the_first_update_and_stop_at_the_end() -> None:
    console = Console(file=io.StringIO(), force_terminal=True)
    with contextlib.ExitStack() as stack:
        bars = stack.enter_context(_ProgressBars(console))
        assert refresh_threads() == []  # nothing started yet: export may still fork
        updaters = [threading.Thread(target=bars.update, args=(f"type{i}", 1, 2))
                    for i in range(8)]
        for updater in updaters:
            updater.start()
        for updater in updaters:
            updater.join()
        started = refresh_threads()
        assert len(started) == 1
    bars.update("late", 1, 1)  # after the end: ignored, nothing restarts
    for thread in started:
        thread.join(timeout=5)  # rich stops its refresh thread without waiting for it
    assert refresh_threads() == []


def test_no_progress_bars_for_json_output() -> None:
    with contextlib.ExitStack() as stack:
        assert progress_bars(stack, "json") is None


def _all_commands() -> list[tuple[str, click.Command]]:
    found = []
    for name in COMMANDS:
        command = load_command(name)
        if isinstance(command, click.Group):
            found += [(f"{name} {sub}", command.commands[sub]) for sub in command.commands]
        else:
            found.append((name, command))
    return found


def _flags(command: click.Command) -> dict[str, click.Parameter]:
    return {flag: p for p in command.params for flag in getattr(p, "opts", [])
            if flag.startswith("--")}


def test_one_vocabulary_across_commands() -> None:
    """Clusters are --from/--to, the store --store, a new snapshot's store --out, a key
    --key-file, in every command; the old spellings are gone everywhere."""
    retired = {"--context", "--target", "--target-version", "--from-store", "--encrypt-key-file"}
    for name, command in _all_commands():
        flags = _flags(command)
        assert not retired & flags.keys(), name
        for flag in ("--from", "--to"):
            if flag in flags:
                assert flags[flag].metavar == "CONTEXT", (name, flag)
        if "--store" in flags:
            assert flags["--store"].metavar == "URL" and flags["--store"].default == "./snapshots"
    with_store = {name for name, command in _all_commands() if "--store" in _flags(command)}
    assert with_store == {"export", "transform", "check-apis", "import", "verify",
                          "snapshot list", "snapshot show", "snapshot verify", "shift",
                          "volumes backup", "volumes restore", "volumes verify", "volumes ls",
                          "volumes sync", "volumes unquiesce"}
    with_key = {name for name, command in _all_commands() if "--key-file" in _flags(command)}
    assert with_key == with_store - {"snapshot list", "snapshot show", "shift", "volumes ls"}


def _run_main(tmp_path: Path, prelude: str, *args: str):
    """``migrator ARGS`` as a process of its own (its console entry, ``main()``), after
    ``prelude``; returns the finished process."""
    import subprocess
    import sys

    script = tmp_path / "entry.py"
    script.write_text(f"import sys\n{prelude}\nsys.argv = ['migrator', *{list(args)!r}]\n"
                      "from migrator.cli import main\nmain()\n")
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, cwd=Path(__file__).resolve().parents[2])


def test_the_process_ends_once_the_command_is_done_with_exit_handlers_run(tmp_path: Path):
    # Python's exit handlers still run, after the command's output, and its status stays.
    handler = "import atexit\natexit.register(lambda: print('handler ran'))"
    done = _run_main(tmp_path, handler, "--help")
    assert done.returncode == 0, done.stderr
    help_text, handler_line = done.stdout.rsplit("\n", 2)[0], done.stdout.rsplit("\n", 2)[1]
    assert handler_line == "handler ran"
    assert help_text.startswith("Usage: migrator")
    assert help_text.splitlines()[-1].split()[0] == "volumes"  # all of it, to the end
    store = tmp_path / "no-store"
    failed = _run_main(tmp_path, handler, "volumes", "ls", "--store", f"file://{store}")
    expected = CliRunner().invoke(cli, ["volumes", "ls", "--store", f"file://{store}"])
    assert failed.returncode == expected.exit_code == 6
    assert failed.stderr.startswith("error: directory") and failed.stdout == "handler ran\n"


def test_a_thread_still_running_is_waited_for(tmp_path: Path):
    late = ("import threading, time\n"
            "def late():\n    time.sleep(0.5)\n    print('thread done', flush=True)\n"
            "threading.Thread(target=late).start()")
    done = _run_main(tmp_path, late, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"migrator, version {__version__}", "thread done"]
