"""The ``migrator`` command line: parse options, call the core, render the result.

This package is the only part of migrator that imports click or rich, and its root group,
here, is the only place that maps exceptions to exit codes: a
:class:`~migrator.errors.MigratorError` becomes ``error: <message>`` (and its hint) on stderr
and the error's ``exit_code``; a traceback only with ``-v``.

Each command lives in a module of its own, imported only when that command runs (``migrator
--help`` imports them all, for their short help): start-up time counts, and ``migrator
export`` must not pay for the transform, the importer or rich. :mod:`.discover`,
:mod:`.export`, :mod:`.snapshot` (list, show, verify), :mod:`.transform`, :mod:`.check_apis`,
:mod:`.imports` (import) and :mod:`.verify` hold the commands; :mod:`.options` (the one
vocabulary of options) and :mod:`.render` what they share.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import os
import sys
import threading
import traceback
from collections.abc import Sequence
from typing import Any

import click

from migrator import __version__
from migrator.errors import MigratorError

_VERBOSE_KEY = "migrator.verbose"

# Command name -> "module:attribute" of its click command, imported when first asked for.
COMMANDS = {
    "check-apis": "migrator.cli.check_apis:check_apis_command",
    "migrate": "migrator.cli.migrate:migrate_command",
    "pause": "migrator.cli.migrate:pause_command",
    "plan": "migrator.cli.migrate:plan_command",
    "rehearse": "migrator.cli.migrate:rehearse_command",
    "report": "migrator.cli.migrate:report_command",
    "resume": "migrator.cli.migrate:resume_command",
    "rollback": "migrator.cli.migrate:rollback_command",
    "status": "migrator.cli.migrate:status_command",
    "teardown": "migrator.cli.migrate:teardown_command",
    "discover": "migrator.cli.discover:discover",
    "export": "migrator.cli.export:export",
    "import": "migrator.cli.imports:import_command",
    "shift": "migrator.cli.shift:shift",
    "snapshot": "migrator.cli.snapshot:snapshot",
    "transform": "migrator.cli.transform:transform",
    "verify": "migrator.cli.verify:verify_command",
    "volumes": "migrator.cli.volumes:volumes",
}


class _MigratorGroup(click.Group):
    """The root group: loads a command's module only when the command is asked for, and turns
    a MigratorError into a one-line message and its exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in COMMANDS:
            command = load_command(cmd_name)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MigratorError as exc:
            if ctx.meta.get(_VERBOSE_KEY, 0) > 0:
                click.echo("".join(traceback.format_exception(exc)).rstrip(), err=True)
            click.echo(f"error: {exc}", err=True)
            if exc.hint:
                click.echo(f"hint: {exc.hint}", err=True)
            ctx.exit(exc.exit_code)


def load_command(name: str) -> click.Command:
    """Command ``name`` of :data:`COMMANDS`, importing its module (once: Python caches it)."""
    module, _, attribute = COMMANDS[name].partition(":")
    command = getattr(importlib.import_module(module), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{COMMANDS[name]} is not a click command")
    return command


@click.group(cls=_MigratorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="migrator")
@click.option(
    "-v", "--verbose", count=True, help="More logging (-v: info and tracebacks, -vv: debug)."
)
@click.option(
    "--retry-for",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="How long to keep retrying a cluster that does not answer (refused, reset, 5xx, "
    "throttled) before giving up: long enough to outlast an API server restart. "
    "Default: 120.",
)
@click.pass_context
def cli(ctx: click.Context, verbose: int, retry_for: float | None) -> None:
    """Migrate everything from one Kubernetes cluster to a new one."""
    ctx.meta[_VERBOSE_KEY] = verbose
    if retry_for is not None:
        from migrator.kube import retry

        retry.set_budget(retry_for)
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose == 1 else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("migrator").setLevel(level)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point. Run as the process's own command (no ``argv``), it ends
    the process as soon as the command is done (see :func:`_end_process`)."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="migrator")
    except SystemExit as done:
        if argv is None:
            _end_process(done)
        raise


def _end_process(done: SystemExit) -> None:
    """End the process at once when the command has nothing left running.

    After the command, Python would tear down every module and object one by one: ~0.1 s,
    most of it boto3's client (measured: a process that made one S3 client and nothing else
    takes 0.13-0.18 s to exit), to free memory the kernel frees anyway. A mover's pass runs
    as a process of its own, again and again up to the final one inside the cutover window,
    where a pass with little to do takes ~1 s. So, once no thread but this one runs, the
    exit handlers run (logging's, multiprocessing's, temporary files': everything Python
    would run), the standard streams are flushed, and the process exits with the command's
    status. Otherwise (a thread still running, a status that is not a number) Python ends
    it the usual way."""
    status = 0 if done.code is None else done.code
    if not isinstance(status, int):
        return
    if any(
        thread is not threading.main_thread() and thread.is_alive() and not thread.daemon
        for thread in threading.enumerate()
    ):
        return
    atexit._run_exitfuncs()  # what Python runs at exit, in its order (and only once)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a closed pipe: Python's own status for a failed flush at exit
        os._exit(120)
    os._exit(status)
