"""Preflight: everything that can be known to stop a migration, checked before anything is
touched, each check a pass/warn/fail line with what to do. The plan is ready when nothing
fails.

:func:`run_preflight` opens its own connections and closes them; a check module per check
(or pair): :mod:`.reachable`, :mod:`.permissions`, :mod:`.apis` (removed-apis),
:mod:`.controllers` (crd-controllers), :mod:`.storage` (storage-classes), :mod:`.capacity`,
:mod:`.webhooks` (admission-webhooks), :mod:`.certificates`, :mod:`.versions`
(version-skew), :mod:`.dns`, :mod:`.store`, :mod:`.gitops`.
"""

from __future__ import annotations

from migrator.migrate.preflight.result import CHECKS, CheckResult, PreflightReport
from migrator.migrate.preflight.runner import run_preflight

__all__ = ["CHECKS", "CheckResult", "PreflightReport", "run_preflight"]
