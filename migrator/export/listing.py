"""The two pieces of listing one resource type that hold logic, apart from any cluster.

- :func:`export_pages` is the per-page loop: the processed pages of one pass over a type's
  list (:func:`~migrator.export.pages.process_page`) are de-duplicated across pages by uid,
  written, and counted into the type's report. It takes the pages as plain data (any
  iterable), so it is the same code whether the pages come from an API server or a test.
- :func:`restart_on_expiry` runs one complete pass over a list (``list_once``) and runs it
  again from the start when it fails with 410 Expired: a continue token outlived etcd's
  compaction window, and the only way on is a fresh list.

:mod:`migrator.export.runner` wires them to a cluster and a snapshot writer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TypeVar

from migrator.errors import ApiError
from migrator.export.pages import PageResult
from migrator.export.report import ResourceReport

log = logging.getLogger(__name__)

T = TypeVar("T")

# reprocess(raw, exclude): the page again, leaving out the objects whose uid is in exclude.
ReprocessFn = Callable[[bytes, frozenset[str]], PageResult]


def export_pages(
    pages: Iterable[tuple[bytes, PageResult]],
    write: Callable[[PageResult], None],
    report: ResourceReport,
    *,
    reprocess: ReprocessFn,
    on_page: Callable[[int | None], None] | None = None,
) -> None:
    """Write every processed page of ``pages`` (each with the body it came from) and count
    it into ``report``.

    A page holding an object whose uid an earlier page of this pass had is processed again
    without it (``reprocess``), the object counted as a duplicate: the safety net against an
    API server that repeats an object across pages. ``on_page(total)`` is called after each
    page, once it is written.
    """
    seen: set[str] = set()
    for raw, result in pages:
        if not seen.isdisjoint(result.uids):
            repeated = result.duplicates
            result = reprocess(raw, frozenset(seen & result.uids))
            log.info(
                "%d object(s) repeated across pages of one list; kept once",
                result.duplicates - repeated,
            )
        seen |= result.uids
        write(result)
        report.listed += result.listed
        report.exported += result.exported
        report.duplicates += result.duplicates
        report.aside += result.aside
        report.skipped.update(result.skipped)
        report.stripped.update(result.stripped)
        report.kept.extend(result.kept)
        if on_page is not None:
            on_page(result.total)


def restart_on_expiry(
    list_once: Callable[[], T],
    *,
    max_restarts: int,
    before_restart: Callable[[ApiError], None],
) -> tuple[T, int]:
    """Call ``list_once`` until it completes; a 410 Expired starts it over, at most
    ``max_restarts`` times. Returns its result and how many restarts it took.

    ``before_restart`` throws away what the failed pass produced (written objects, counts).
    Any other error, or a 410 once the restarts are used up, is raised.
    """
    restarts = 0
    while True:
        try:
            return list_once(), restarts
        except ApiError as exc:
            if exc.status != 410 or restarts >= max_restarts:
                raise
            log.info("list expired (410: %s); restarting it from the first page", exc)
            before_restart(exc)
            restarts += 1
