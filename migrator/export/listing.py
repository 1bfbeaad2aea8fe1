"""The two pieces of listing one resource type that hold logic, apart from any cluster.

- :func:`export_pages` is the per-page loop: every item of every page is de-duplicated by
  uid, classified, stripped and written, and counted into the type's report. It takes the
  pages as plain data (any iterable), so it is the same code whether the pages come from an
  API server or from a test.
- :func:`restart_on_expiry` runs one complete pass over a list (``list_once``) and runs it
  again from the start when it fails with 410 Expired: a continue token outlived etcd's
  compaction window, and the only way on is a fresh list.

:mod:`migrator.export.runner` wires them to a cluster and a snapshot writer.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from migrator.errors import ApiError
from migrator.export import rules
from migrator.export.report import ResourceReport
from migrator.export.scope import NamespaceScope
from migrator.export.selection import ResourceType

log = logging.getLogger(__name__)

T = TypeVar("T")

# write(object, aside): store one stripped object and what was set aside from it (or None).
WriteFn = Callable[[dict[str, Any], dict[str, Any] | None], None]

_NAMESPACES = ("", "namespaces")


class Page(NamedTuple):
    """One page of a list: its items and, when known, the number of items of the whole list."""

    items: list[dict[str, Any]]
    total: int | None = None


@dataclass(frozen=True)
class PageRules:
    """What the page loop applies to each item besides the fixed rules of :mod:`rules`."""

    scope: NamespaceScope = field(default_factory=NamespaceScope)
    strip: rules.StripOptions = field(default_factory=rules.StripOptions)


def export_pages(
    pages: Iterable[Page],
    rtype: ResourceType,
    write: WriteFn,
    report: ResourceReport,
    page_rules: PageRules | None = None,
    *,
    on_page: Callable[[int | None], None] | None = None,
) -> None:
    """Write every kept item of ``pages`` (items of ``rtype``) and count it into ``report``.

    An item whose uid was already seen in this pass is counted as a duplicate and not
    written again: the safety net against an API server that repeats an object across pages.
    ``on_page(total)`` is called after each page, once its items are written.
    """
    page_rules = page_rules or PageRules()
    seen: set[str] = set()
    scope_rule = page_rules.scope.skip_rule if (rtype.group, rtype.resource) == _NAMESPACES else None
    classify, strip = rules.classifier(rtype), rules.stripper(rtype, page_rules.strip)
    skipped, stripped = report.skipped, report.stripped
    for items, total in pages:
        for obj in items:
            report.listed += 1
            meta = obj.get("metadata") or {}
            uid = meta.get("uid")
            if uid is not None:
                if uid in seen:
                    report.duplicates += 1
                    continue
                seen.add(uid)
            if scope_rule is not None:
                out_of_scope = scope_rule(meta.get("name", ""))
                if out_of_scope is not None:
                    skipped[out_of_scope.name] += 1
                    continue
            rule = classify(obj)
            if rule is not None:
                skipped[rule.name] += 1
                continue
            obj, removed, aside = strip(obj)
            stripped.update(removed)
            write(obj, aside)
            report.exported += 1
            if aside is not None:
                report.aside += 1
        if on_page is not None:
            on_page(total)


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
