"""DNS providers behind one interface (:class:`~.base.Provider`): Route53 weighted records,
RFC2136 round-robin sets, external-dns annotations; and external-dns's registry, read to
know when it owns the records.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from migrator.errors import ConfigError
from migrator.kube import Cluster
from migrator.traffic.providers.base import Provider
from migrator.traffic.settings import ProviderSettings

__all__ = ["Provider", "open_provider"]


def open_provider(
    settings: ProviderSettings,
    clusters: Mapping[str, Cluster] | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Provider:
    """The provider ``settings`` name; ``clusters`` (``old``, ``new``) for external-dns."""
    if settings.kind == "rfc2136":
        from migrator.traffic.providers.rfc2136 import Rfc2136Provider

        return Rfc2136Provider(settings, sleep=sleep)
    if settings.kind == "route53":
        from migrator.traffic.providers.route53 import Route53Provider

        return Route53Provider(settings, clock=clock, sleep=sleep)
    from migrator.traffic.providers.externaldns import ExternalDnsProvider

    missing = [side for side in ("old", "new") if not clusters or side not in clusters]
    if missing:
        raise ConfigError(
            "the external-dns provider sets annotations in both clusters: give "
            + " and ".join({"old": "--from CONTEXT", "new": "--to CONTEXT"}[m] for m in missing)
        )
    assert clusters is not None
    return ExternalDnsProvider(settings, clusters, clock=clock, sleep=sleep)
