"""``dns``: the names the plan shifts are where a shift expects to find them: on the old
targets, and not moved part way by someone (or something) else.

This is the traffic stage's own survey (:func:`migrator.traffic.survey`), which reads the
records and changes nothing. Targets read from a Service or Ingress are waited for at most
:data:`ENDPOINT_WAIT` seconds here: the new cluster's may not exist before the import, and
the shift surveys again before it starts.
"""

from __future__ import annotations

import dataclasses

from migrator import traffic
from migrator.errors import DnsError, ExternalDnsOwned, MigratorError, RecordsChanged
from migrator.migrate.preflight.context import SOURCE, TARGET, Context
from migrator.migrate.preflight.result import FAIL, PASS, SKIP, WARN, CheckResult, bounded

ENDPOINT_WAIT = 10.0


def check_dns(ctx: Context) -> CheckResult:
    settings = ctx.plan.traffic
    if settings is None:
        return CheckResult("dns", SKIP, "no traffic section in the plan: no DNS name to shift")
    settings = dataclasses.replace(
        settings, endpoint_timeout=min(settings.endpoint_timeout, ENDPOINT_WAIT)
    )
    clusters = {
        role: ctx.clusters[side]
        for role, side in (("old", SOURCE), ("new", TARGET))
        if side in ctx.clusters
    }
    names = ", ".join(settings.dns_names)
    where = f"{settings.provider.kind} zone {settings.provider.zone}"
    unusable = f"the DNS provider ({where}) cannot be used"
    fix = "check the provider's address, credentials and zone in the plan's traffic section"
    try:
        provider = traffic.open_provider(settings.provider, clusters)
    except MigratorError as exc:
        return CheckResult("dns", FAIL, f"{unusable}: {exc}", fix)
    with provider:
        try:
            provider.check()
            plan = traffic.survey(settings, provider, clusters)
        except RecordsChanged as exc:
            return CheckResult(
                "dns",
                FAIL,
                f"{names}: {exc}",
                "find out who changed the records and put them back on the old targets "
                "(or let the shift take them over: --take-over)",
            )
        except ExternalDnsOwned as exc:
            return CheckResult(
                "dns", FAIL, str(exc), "shift through external-dns (provider kind external-dns)"
            )
        except DnsError as exc:
            return CheckResult("dns", FAIL, f"{unusable}: {exc}", fix)
        except MigratorError as exc:
            return CheckResult(
                "dns",
                WARN,
                f"the survey of {names} could not finish: {exc}",
                "the shift surveys again before it starts; fix this by then",
            )
    return CheckResult(
        "dns",
        PASS,
        f"{len(plan.routes)} name(s) on their old targets in {where}",
        details=bounded(
            f"{name}: {route.old.describe()} now, {route.new.describe()} after the shift"
            for name, route in plan.routes.items()
        ),
    )
