"""The plan of a shift: every change it will make, move by move, computed without touching
anything (the dry run prints it; the runner follows it).

A shift is a list of **moves**, each one batch of changes to every name:

1. *prepare*: the records as they are (all traffic on the old targets) with the shift's TTL,
   and, for Route53, as weighted sets; then wait out the old TTL, so no resolver still holds
   an answer that would outlive the steps;
2. one *step* per percentage (``0 → 10 → 25 → 50 → 100`` by default): the records that send
   that share to the new targets; after each, wait at least the TTL while the gates check
   the new cluster;
3. *finish*: the TTL back to what it was.

Rolling back, from any move, is one batch back to the records saved before the shift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from migrator.errors import ConfigError, RecordsChanged
from migrator.traffic.providers.base import Provider
from migrator.traffic.records import (
    TYPES,
    Change,
    Records,
    RecordState,
    Route,
    Targets,
    changes,
    state_to_dict,
    ttl_of,
)
from migrator.traffic.settings import ShiftSettings

PREPARE, STEP, FINISH = "prepare", "step", "finish"


@dataclass(frozen=True)
class Move:
    """One batch of the shift: ``records`` after it, the ``changes`` from the move before,
    the wait after writing it before it may pass, whether gates check it, and the share of
    answers each name then sends to the new targets."""

    index: int
    kind: str
    percent: int
    approve: bool
    wait: float
    gated: bool
    records: RecordState
    changes: tuple[Change, ...]
    shares: dict[str, float]
    operations: tuple[Any, ...] = ()

    @property
    def label(self) -> str:
        if self.kind == PREPARE:
            return "prepare (shift TTL, all on old)"
        if self.kind == FINISH:
            return "finish (TTL restored)"
        return f"{self.percent} % to new"

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "kind": self.kind,
            "label": self.label,
            "percent": self.percent,
            "approve": self.approve,
            "waitSeconds": self.wait,
            "gated": self.gated,
            "shares": {n: round(s, 4) for n, s in self.shares.items()},
            "changes": [c.to_dict() for c in self.changes],
            "operations": list(self.operations),
        }


@dataclass(frozen=True)
class ShiftPlan:
    """What the shift will do (module doc), from ``original``: the records saved before it."""

    settings: ShiftSettings
    routes: dict[str, Route]
    original: RecordState
    moves: tuple[Move, ...]
    took_over: bool = False
    cached_ttls: dict[str, int | None] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return list(self.routes)

    def rollback(self, current: Mapping[str, Records]) -> tuple[Change, ...]:
        """The changes that put every name back as it was before the shift."""
        return changes(current, self.original)

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings.to_dict(),
            "routes": {n: r.to_dict() for n, r in self.routes.items()},
            "original": state_to_dict(self.original),
            "tookOver": self.took_over,
            "cachedTtls": self.cached_ttls,
            "moves": [m.to_dict() for m in self.moves],
        }


def plan(
    settings: ShiftSettings,
    provider: Provider,
    original: RecordState,
    routes: Mapping[str, Route],
    *,
    took_over: bool = False,
    cached_ttls: Mapping[str, int | None] | None = None,
) -> ShiftPlan:
    """Every move of the shift from ``original`` (the records before it) along ``routes``;
    pure: ``provider`` only renders records. ``cached_ttls`` are the TTLs resolvers may hold
    the names' answers for, when the records do not say (external-dns's are annotations).
    Raises a :class:`ConfigError` if a planned batch would break the provider's rules."""
    cached = {n: (cached_ttls or {}).get(n) or ttl_of(original[n]) for n in routes}
    shift_ttl = {n: min(settings.ttl, cached[n] or settings.ttl) for n in routes}
    restore = {n: ttl_of(original[n]) or cached[n] for n in routes}
    lowered = [ttl for n, ttl in cached.items() if ttl is not None and ttl > shift_ttl[n]]
    step_wait = max(settings.step_wait, float(max(shift_ttl.values())))
    specs: list[tuple[str, int, bool, float, bool, Mapping[str, int | None]]] = [
        (PREPARE, 0, False, float(max(lowered, default=0)), False, shift_ttl),
        *[(STEP, s.percent, s.approve, step_wait, True, shift_ttl) for s in settings.steps],
        (FINISH, 100, False, 0.0, False, restore),
    ]
    moves: list[Move] = []
    before: RecordState = dict(original)
    for index, (kind, percent, approve, wait, gated, ttls) in enumerate(specs):
        after = {
            n: provider.render(route, percent, ttls[n], original[n]) for n, route in routes.items()
        }
        for name, recs in after.items():
            provider.validate(name, recs)
        batch = changes(before, after)
        moves.append(
            Move(
                index=index,
                kind=kind,
                percent=percent,
                approve=approve,
                wait=wait,
                gated=gated,
                records=after,
                changes=batch,
                shares={n: provider.share(routes[n], after[n]) for n in routes},
                operations=tuple(provider.operations(batch)),
            )
        )
        before = after
    return ShiftPlan(
        settings,
        dict(routes),
        dict(original),
        tuple(moves),
        took_over,
        {n: cached[n] for n in routes},
    )


def unexpected(
    settings: ShiftSettings, provider: Provider, routes: Mapping[str, Route], found: RecordState
) -> list[str]:
    """Why the records found are not those of a name wholly on the old cluster (empty if
    they are): the state a shift may start from."""
    problems = []
    ours = set(settings.provider.set_ids)
    for spec in settings.names:
        name, recs, route = spec.name, found[spec.name], routes[spec.name]
        dns = [r for r in recs if r.type in TYPES]
        if not recs:
            problems.append(f"{name} has no record to move away from")
            continue
        share = provider.share(route, recs)
        if share > 0:
            problems.append(f"{name} already sends {share:.0%} of its answers to the new targets")
        foreign = sorted({r.set_id for r in dns if r.set_id and r.set_id not in ours})
        if foreign:
            problems.append(f"{name} has weighted sets of its own ({', '.join(foreign)})")
        if spec.old.given:
            stray = sorted(
                {v for r in dns for v in r.targets()}
                - route.old.values()
                - {v.rstrip(".") for v in route.old.values()}
            )
            if stray:
                problems.append(
                    f"{name} points at {', '.join(stray)}, not at the old targets "
                    f"({route.old.describe()})"
                )
    return problems


def check_start(
    settings: ShiftSettings,
    provider: Provider,
    routes: Mapping[str, Route],
    found: RecordState,
    *,
    take_over: bool,
) -> RecordState:
    """The records to save as the shift's starting point: those found, if they point only
    at the old targets; with ``take_over``, whatever they are, the records that point only
    at the old targets as the shift would write them. Raises :class:`RecordsChanged`
    otherwise."""
    problems = unexpected(settings, provider, routes, found)
    if not problems:
        return dict(found)
    if not take_over:
        raise RecordsChanged(
            "the records are not as a shift expects to find them: " + "; ".join(problems),
            names=[n for n in routes],
            hint="look at the records; to make migrator own them from now on, with every name "
            "on the old targets as the starting point, add --take-over",
        )
    return {n: provider.render(route, 0, ttl_of(found[n]), found[n]) for n, route in routes.items()}


def route_for(
    name: str, old: Targets | None, new: Targets | None, found: Records, old_set_id: str
) -> Route:
    """A name's route: the targets given, else (old side) those the records point at."""
    if new is None or new.empty:
        raise ConfigError(
            f"{name}: where it points on the new cluster is unknown",
            hint="give the new targets (addresses, hostname or from:)",
        )
    if old is None or old.empty:
        weighted = any(r.weighted for r in found)
        seen = Targets.from_records(found, set_id=old_set_id if weighted else None)
        old = Targets(
            tuple(a for a in seen.addresses if a not in new.addresses),
            seen.hostname if seen.hostname != new.hostname else None,
            seen.alias_zone,
            source="the records before the shift",
        )
    if old.empty:
        raise ConfigError(
            f"{name}: where it points on the old cluster is unknown"
            + ("" if found else ": it has no A, AAAA or CNAME record"),
            hint="give the old targets (addresses, hostname or from:)",
        )
    return Route(name, old, new)
