"""Output for people, shared by every command: key/value and column tables on stdout, progress
bars on stderr.

rich is slow to import and only needed when text is rendered or progress is shown, so it is
imported inside the functions here, never at module level: a ``-o json`` run never loads it.
The progress display starts on the first update, not when a command begins: its refresh
thread must not exist yet when export forks its page worker processes.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from migrator.run.progress import Progress as ProgressCallback

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from migrator.snapshot import SnapshotReader

Rows = list[tuple[str, str]]
Report = TypeVar("Report")
MAX_LISTED = 50  # failures and differences shown in text output (-o json has them all)


def make_console(*, stderr: bool = False) -> Console:
    """A rich console on stdout (or stderr); the first one of a run imports rich."""
    from rich.console import Console

    return Console(stderr=stderr)


def show_report(report: Any, output: str, render_text: Callable[[Console, Any], None]) -> None:
    """A stage's report on stdout: its ``to_dict()`` as JSON for machines (``-o json``), else
    rendered for people by ``render_text``."""
    if output == "json":
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        render_text(make_console(), report)


def render(console: Console, title: str, rows: Rows) -> None:
    """A key/value table on a terminal, plain aligned text otherwise (pipes, CI logs)."""
    if console.is_terminal:
        from rich.table import Table
        from rich.text import Text

        # Text, not markup: values hold names and server messages, brackets and all.
        table = Table(title=Text(title), show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for key, value in rows:
            table.add_row(Text(key), Text(value))
        console.print(table)
        return
    width = max(len(key) for key, _value in rows)
    click.echo(title)
    for key, value in rows:
        first, *rest = value.split("\n")
        click.echo(f"  {key.ljust(width)}  {first}")
        for line in rest:
            click.echo(f"  {' ' * width}  {line}")
    click.echo()


def render_table(console: Console, title: str, header: list[str], rows: list[list[str]]) -> None:
    """A table with a header on a terminal, plain aligned columns otherwise; nothing if empty."""
    if not rows:
        return
    if console.is_terminal:
        from rich.table import Table
        from rich.text import Text

        table = Table(title=Text(title), title_justify="left")
        for name in header:
            table.add_column(Text(name), overflow="fold")
        for row in rows:
            table.add_row(*(Text(str(cell)) for cell in row))
        console.print(table)
        return
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    click.echo(title)
    for row in [header, *rows]:
        click.echo(
            "  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        )
    click.echo()


def run_on_target(
    stage: Callable[..., Report],
    reader: SnapshotReader,
    options: Any,
    kubeconfig: Path | None,
    context: str,
    output: str,
    **connect: Any,
) -> Report:
    """Run ``stage`` (import or verify) of the snapshot against the cluster ``context``, with
    progress bars for people; ``connect`` goes to :func:`migrator.kube.connect`."""
    from migrator import kube

    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(kube.connect(kubeconfig, context, **connect))
        return stage(reader, cluster, options, on_progress=progress_bars(stack, output))


def progress_bars(
    stack: contextlib.ExitStack, output: str, *, transfer: bool = False
) -> ProgressCallback | None:
    """Progress bars on stderr when it is a terminal and the output is for people: the
    callback the core stages report to, or None. With ``transfer``, a task named ``bytes``
    shows sizes, the rate and the time left (the volume mover)."""
    if output != "text":
        return None
    console = make_console(stderr=True)
    if not console.is_terminal:
        return None
    bars = _TransferBars(console) if transfer else _ProgressBars(console)
    return stack.enter_context(bars).update


class _ProgressBars:
    """One rich progress bar per resource type, created when the type first reports.

    The display, and with it rich's refresh thread, starts on the first update; updates come
    from several threads, hence the lock. Updates after the exit are ignored.
    """

    def __init__(self, console: Console) -> None:
        self._console = console
        self._progress: Progress | None = None
        self._tasks: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._closed = False

    def update(self, resource: str, done: int, total: int | None) -> None:
        with self._lock:
            if self._closed:
                return
            if self._progress is None:
                self._progress = self._start()
            if resource not in self._tasks:
                self._tasks[resource] = self._progress.add_task(resource, total=total)
            self._progress.update(self._tasks[resource], completed=done, total=total)

    def _start(self) -> Progress:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self._console,
            transient=True,
        )
        progress.start()
        return progress

    def __enter__(self) -> _ProgressBars:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._closed = True
            if self._progress is not None:
                self._progress.stop()


class _TransferBars(_ProgressBars):
    """Progress bars where the ``bytes`` task shows sizes, rate and time left, and the others
    counts: one display for a copy's bytes and files."""

    def _start(self) -> Progress:
        from rich.filesize import decimal
        from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn
        from rich.text import Text

        class Amount(ProgressColumn):
            def render(self, task: Task) -> Text:
                if task.description != "bytes":
                    total = "?" if task.total is None else f"{int(task.total):,}"
                    return Text(f"{int(task.completed):,}/{total}")
                done = decimal(int(task.completed))
                total = "?" if task.total is None else decimal(int(task.total))
                speed = task.finished_speed or task.speed
                rate = f"{decimal(int(speed))}/s" if speed else "-"
                left = task.time_remaining
                eta = "-" if left is None else f"{int(left) // 60}:{int(left) % 60:02d}"
                return Text(f"{done}/{total}  {rate}  ETA {eta}")

        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            Amount(),
            console=self._console,
            transient=True,
        )
        progress.start()
        return progress
