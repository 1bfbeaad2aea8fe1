"""What a preflight found: one line per check, and the report they make together."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from migrator.migrate.plan import PREFLIGHT_CHECKS
from migrator.run.report import Problem, StageReport

CHECKS = PREFLIGHT_CHECKS  # the plan names them too (preflight.skip)
PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"
STATUSES = (PASS, WARN, FAIL, SKIP)
MAX_DETAILS = 20


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict: ``summary`` is what was found, ``action`` what to do about it
    (for a warn or a fail), ``details`` the objects concerned (see :func:`bounded`)."""

    name: str
    status: str
    summary: str
    action: str = ""
    details: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.name not in CHECKS:
            raise ValueError(f"unknown preflight check {self.name!r}")
        if self.status not in STATUSES:
            raise ValueError(f"unknown preflight status {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "status": self.status, "summary": self.summary}
        if self.action:
            data["action"] = self.action
        if self.details:
            data["details"] = list(self.details)
        return data


def bounded(items: Iterable[str], limit: int = MAX_DETAILS) -> tuple[str, ...]:
    """At most ``limit`` items, then "and N more": a report stays readable for any cluster."""
    listed = list(items)
    if len(listed) <= limit:
        return tuple(listed)
    return (*listed[:limit], f"and {len(listed) - limit} more")


@dataclass
class PreflightReport(StageReport):
    """Every check, in :data:`CHECKS` order; the plan is ready when none failed."""

    checks: list[CheckResult] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not any(check.status == FAIL for check in self.checks)

    def check(self, name: str) -> CheckResult:
        """The result of the check called ``name``."""
        return next(check for check in self.checks if check.name == name)

    def problems(self) -> list[Problem]:
        return [
            Problem(
                check.name, f"{check.summary}; {check.action}" if check.action else check.summary
            )
            for check in self.checks
            if check.status == FAIL
        ]

    def counts(self) -> dict[str, int]:
        return {status: sum(c.status == status for c in self.checks) for status in STATUSES}

    def to_dict(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "counts": self.counts(),
            "checks": [check.to_dict() for check in self.checks],
        }
