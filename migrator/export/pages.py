"""One list page in, snapshot lines out: the export's per-object work, and where it runs.

:func:`process_page` parses a page as the API server sent it, then de-duplicates,
classifies, strips and encodes every item, and compresses the lines it keeps into one gzip
member, ready to append to a part (:meth:`~migrator.snapshot.parts.PartRoller.add_member`).
It is a pure function of bytes and plain data, so it can run anywhere.

Where it runs is :class:`PageWorkers`' choice. The export's own threads share one
interpreter lock: on a cluster of many small objects the parsing and encoding, not the API
server, would set the pace. With ``processes`` > 0 pages go to that many worker processes,
which use the cores the API server leaves free, while the threads only wait for pages and
append members; with 0 they are processed in the calling thread.
"""

from __future__ import annotations

import functools
import itertools
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from migrator import jsoncodec
from migrator.errors import MigratorError
from migrator.export.strips import StripOptions, Stripped, stripper
from migrator.kube.pager import continue_token
from migrator.resources import regenerated
from migrator.resources.scope import NAMESPACES, Scope
from migrator.resources.types import ResourceType
from migrator.run.processes import process_pool
from migrator.snapshot.parts import gzip_member
from migrator.snapshot.writer import aside_record


@dataclass(frozen=True)
class PageSpec:
    """What :func:`process_page` needs besides the page: the type and the user's options."""

    rtype: ResourceType
    scope: Scope = field(default_factory=Scope.for_export)
    strip: StripOptions = field(default_factory=StripOptions)


@dataclass
class PageResult:
    """What one page gave: counts for the report, the kept objects as a gzip member, the
    uids it saw (for de-duplication across pages) and where the list goes on."""

    listed: int = 0
    exported: int = 0
    duplicates: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    stripped: Counter[str] = field(default_factory=Counter)
    member: bytes = b""
    line_bytes: int = 0
    aside: int = 0
    aside_member: bytes = b""
    aside_bytes: int = 0
    kept: list[str] = field(default_factory=list)  # "ns/name: what a strip left on purpose"
    uids: frozenset[str] = frozenset()
    continue_token: str = ""
    total: int | None = None  # objects in the whole list, when the page says


def process_page(raw: bytes, spec: PageSpec, exclude: frozenset[str] = frozenset()) -> PageResult:
    """Everything the export does with one page of ``spec.rtype`` objects (the response body
    ``raw``); objects whose uid is in ``exclude`` count as duplicates and are left out.

    An item repeated within the page, or in ``exclude``, is a duplicate: the safety net
    against an API server that repeats an object. Items out of the namespace scope (for the
    Namespace type itself) or matched by a skip rule are counted under the rule's name.
    """
    page = jsoncodec.loads(raw)
    if not isinstance(page, dict):
        raise ValueError(f"a list of {spec.rtype.key} is not a JSON object")
    items: list[dict[str, Any]] = page.get("items") or []
    classify, strip, scope_rule = _page_rules(spec)
    result = PageResult(
        listed=len(items), continue_token=continue_token(page), total=list_total(page)
    )
    seen: set[str] = set()
    lines: list[bytes] = []
    asides: list[bytes] = []
    removed_lists: list[list[str]] = []
    skipped = result.skipped
    dumps = jsoncodec.dumps
    for obj in items:
        meta = obj.get("metadata") or {}
        uid = meta.get("uid")
        if uid is not None:
            if uid in seen or uid in exclude:
                result.duplicates += 1
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
        obj, removed, aside, kept = strip(obj)
        removed_lists.append(removed)
        if kept:
            where = f"{meta['namespace']}/" if meta.get("namespace") else ""
            result.kept.extend(f"{where}{meta.get('name')}: {note}" for note in kept)
        lines.append(dumps(obj))
        if aside is not None:
            asides.append(dumps(aside_record(obj, aside)))
    result.stripped.update(itertools.chain.from_iterable(removed_lists))
    result.uids = frozenset(seen)
    result.exported, result.aside = len(lines), len(asides)
    result.member, result.line_bytes = _member(lines)
    result.aside_member, result.aside_bytes = _member(asides)
    return result


def list_total(page: dict[str, Any]) -> int | None:
    """How many objects the whole list holds, from its first page (None: the server won't say)."""
    listed = len(page.get("items") or ())
    token = continue_token(page)
    if not token:
        return listed
    remaining = (page.get("metadata") or {}).get("remainingItemCount")
    return listed + int(remaining) if remaining is not None else None


def _member(lines: list[bytes]) -> tuple[bytes, int]:
    if not lines:
        return b"", 0
    data = b"\n".join(lines) + b"\n"
    return gzip_member(data), len(data)


Classify = Callable[[dict[str, Any]], regenerated.Rule | None]
Strip = Callable[[dict[str, Any]], Stripped]
ScopeRule = Callable[[str], regenerated.Rule | None]


@functools.lru_cache(maxsize=256)
def _page_rules(spec: PageSpec) -> tuple[Classify, Strip, ScopeRule | None]:
    """The rules of a type, looked up once per process rather than for every page."""
    rtype = spec.rtype
    scope_rule = spec.scope.skip_rule if (rtype.group, rtype.resource) == NAMESPACES else None
    return (
        regenerated.classifier(rtype.group, rtype.resource),
        stripper(rtype, spec.strip),
        scope_rule,
    )


class PageWorkers:
    """Runs :func:`process_page` in the calling thread (``processes=0``) or in a pool of that
    many worker processes; use as a context manager, from any number of threads.

    The pool is :func:`~migrator.run.processes.process_pool`'s: started at once, safely,
    and gone with the export however it ends.
    """

    def __init__(self, processes: int) -> None:
        self.processes = max(0, processes)
        self._pool: ProcessPoolExecutor | None = None
        if self.processes:
            self._pool = process_pool(self.processes, preload=[__name__])

    def process(self, raw: bytes, spec: PageSpec, exclude: Iterable[str] = ()) -> PageResult:
        """:func:`process_page` of ``raw``, wherever the pages run."""
        excluded = frozenset(exclude)
        if self._pool is None or excluded:  # the rare duplicate re-run stays local
            return process_page(raw, spec, excluded)
        try:
            return self._pool.submit(process_page, raw, spec).result()
        except BrokenProcessPool as exc:
            raise MigratorError(
                "an export worker process died (was it killed, or out of memory?)",
                hint="export again with the same --id to resume; --processes 0 keeps the "
                "work in one process",
            ) from exc

    def close(self) -> None:
        """Stop the worker processes; pages still queued are dropped."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> PageWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
