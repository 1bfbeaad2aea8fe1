"""The traffic stage: move DNS names from the old cluster's endpoints to the new cluster's,
in health-gated steps, rolling back on its own.

:func:`survey` reads the records and plans the shift (changing nothing), :func:`plan` is
the pure planning it ends with (the dry run prints it), :func:`apply` runs a plan with its
state in the store, resumable and abortable (:mod:`~migrator.traffic.runner`). The parts:
:mod:`~migrator.traffic.settings` (one validated structure; a settings file's ``traffic:``),
:mod:`~migrator.traffic.providers` (Route53, RFC2136, external-dns behind one interface),
:mod:`~migrator.traffic.gates` (HTTP probes, a user's command), :mod:`~migrator.traffic.endpoints`
(a Service's or Ingress's load balancer address), :mod:`~migrator.traffic.state`.
"""

from __future__ import annotations

from migrator.traffic.plan import Move, ShiftPlan, plan
from migrator.traffic.providers import Provider, open_provider
from migrator.traffic.report import ShiftReport
from migrator.traffic.runner import (
    ABORT,
    RESUME,
    START,
    apply,
    check_startable,
    replan,
    survey,
)
from migrator.traffic.settings import ShiftSettings, parse
from migrator.traffic.state import StateStore

__all__ = [
    "ABORT",
    "RESUME",
    "START",
    "Move",
    "Provider",
    "ShiftPlan",
    "ShiftReport",
    "ShiftSettings",
    "StateStore",
    "apply",
    "check_startable",
    "open_provider",
    "parse",
    "plan",
    "replan",
    "survey",
]
