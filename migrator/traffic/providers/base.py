"""The one small interface every DNS provider implements, and what they share.

A provider reads a name's records (:meth:`Provider.read`), says which records put a share
of the traffic on the new targets (:meth:`Provider.render`, pure: the dry run prints it),
and sends one batch of changes guarded by what must be there before
(:meth:`Provider.send`: Route53's exact DELETEs, RFC2136 prerequisites, a resourceVersion
for annotations). :meth:`Provider.write` wraps ``send``: temporary failures are tried again,
and a refused guard is checked against a fresh reading, so a batch of ours that landed
before its answer was lost does not pass for someone else's change.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

import tenacity

from migrator.errors import RecordsChanged, is_temporary
from migrator.traffic.records import (
    TYPES,
    Change,
    Records,
    RecordState,
    Route,
    Targets,
    absolute,
    ttl_of,
)
from migrator.traffic.settings import ProviderSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

ATTEMPTS = 4  # a provider call failing temporarily is tried this many times in all
DEFAULT_TTL = 300  # a record's TTL when nothing else says (Route53's and external-dns's own)


class Provider(ABC):
    """Where a shift writes DNS (see the module doc). ``sleep`` is injectable: tests never
    wait for the retry backoff."""

    kind: ClassVar[str]

    def __init__(
        self, settings: ProviderSettings, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.settings = settings
        self.sleep = sleep

    @property
    def new_set_id(self) -> str:
        return self.settings.set_ids[1]

    @abstractmethod
    def check(self) -> None:
        """Fail now, changing nothing, if the shift could not write (zone missing, key or
        credentials refused)."""

    @abstractmethod
    def read(self, names: Sequence[str]) -> RecordState:
        """The current A, AAAA and CNAME records (or what stands for them) of each name."""

    @abstractmethod
    def render(
        self, route: Route, percent: int, ttl: int | None, original: Records = ()
    ) -> Records:
        """The records that send ``percent`` % of the name's traffic to the new targets, with
        ``ttl`` (None: the provider's default), given the ``original`` records (those before
        the shift); pure."""

    def cached_ttls(self, found: RecordState) -> dict[str, int | None]:
        """How long resolvers may hold each name's answers, given its records."""
        return {name: ttl_of(recs) for name, recs in found.items()}

    def validate(self, name: str, recs: Records) -> None:  # noqa: B027 (no rule by default)
        """Raise if records a shift plans for ``name`` could not be written."""

    def default_targets(self, name: str, side: str) -> Targets | None:
        """Where ``name`` points on the ``side`` cluster when the settings do not say and the
        records cannot tell (None: unknown)."""
        return None

    @abstractmethod
    def send(self, changes: Sequence[Change]) -> None:
        """Make the changes as one batch, each only if its ``before`` is still there
        (raise :class:`RecordsChanged` otherwise), and return once they are applied."""

    def txt(self, name: str) -> list[str]:
        """The TXT strings at ``name`` (what external-dns's registry writes); none by default."""
        return []

    def operations(self, changes: Sequence[Change]) -> list[Any]:
        """The provider's own requests for ``changes``, as the dry run shows them."""
        return [c.to_dict() for c in changes if not c.noop]

    def matches(self, current: Records, expected: Records) -> bool:
        """Whether the records read are the ones expected (exactly, unless a provider knows
        better)."""
        return current == expected

    def share(self, route: Route, recs: Records) -> float:
        """The share (0-1) of the name's answers that go to the new targets: weights of the
        new set over all weights, else new values over all values (first type present)."""
        for rtype in TYPES:
            group = [r for r in recs if r.type == rtype]
            if not group:
                continue
            if any(r.weighted for r in group):
                total = sum(r.weight or 0 for r in group)
                new = sum(r.weight or 0 for r in group if r.set_id == self.new_set_id)
                return new / total if total else 0.0
            values = [absolute(v) if r.type == "CNAME" else v for r in group for v in r.targets()]
            return sum(v in route.new.values() for v in values) / len(values)
        return 0.0

    def write(self, changes: Sequence[Change]) -> None:
        """:meth:`send` the changes that change something, trying temporary failures again;
        see the module doc."""
        todo = [c for c in changes if not c.noop]
        if not todo:
            return
        try:
            self.retrying(lambda: self.send(todo), f"{self.kind} change")
        except RecordsChanged as exc:
            now = self.retrying(lambda: self.read([c.name for c in todo]), f"{self.kind} read")
            if all(self.matches(now.get(c.name, ()), c.after) for c in todo):
                log.info("the change landed although its answer said otherwise: %s", exc)
                return
            raise

    def retrying(self, fn: Callable[[], T], what: str) -> T:
        """``fn()``, tried again (up to :data:`ATTEMPTS` in all, backing off) while it fails
        temporarily (:func:`~migrator.errors.is_temporary` decides)."""

        def before_sleep(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.info("%s failed (%s); trying again", what, error)

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(is_temporary),
            stop=tenacity.stop_after_attempt(ATTEMPTS),
            wait=tenacity.wait_exponential(multiplier=0.5, max=8),
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(fn)

    def close(self) -> None:  # noqa: B027 (nothing to release by default)
        """Release connections."""

    def __enter__(self) -> Provider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def guard_failed(changes: Sequence[Change], detail: str) -> RecordsChanged:
    """The error for a batch whose guard (what must be there before) did not hold."""
    names = [c.name for c in changes]
    return RecordsChanged(
        f"the records of {', '.join(names)} changed since they were read ({detail}): "
        "nothing was written",
        names=names,
    )
