"""``version-skew``: the target must not be older than the source (a migration is not a
downgrade), and a jump across releases that stopped serving APIs is worth knowing about
(the ``removed-apis`` check says which objects it concerns)."""

from __future__ import annotations

from migrator.kube.removals import REMOVED_IN, Release, format_release
from migrator.migrate.preflight.context import SOURCE, TARGET, Context
from migrator.migrate.preflight.result import FAIL, PASS, WARN, CheckResult, bounded


def removed_between(source: Release, target: Release) -> list[str]:
    """Group/versions the source's release serves that the target's no longer does."""
    return sorted(gv for gv, removal in REMOVED_IN.items() if source < removal <= target)


def version_skew(source: Release, target: Release) -> CheckResult:
    """The verdict on migrating from release ``source`` to release ``target``."""
    src, dst = format_release(source), format_release(target)
    if target < source:
        return CheckResult(
            "version-skew",
            FAIL,
            f"the target ({dst}) is older than the source ({src}): a downgrade",
            "migrate to a cluster of the same release or newer",
        )
    if target == source:
        return CheckResult("version-skew", PASS, f"same release ({src}) on both sides")
    removed = removed_between(source, target)
    minors = target[1] - source[1] if target[0] == source[0] else None
    jump = f"{minors} minor release(s)" if minors is not None else f"{src} to {dst}"
    if removed:
        return CheckResult(
            "version-skew",
            WARN,
            f"{src} → {dst} jumps {jump} and crosses {len(removed)} removed API version(s)",
            "see the removed-apis check for the objects concerned (`migrator check-apis`)",
            bounded(removed),
        )
    return CheckResult("version-skew", PASS, f"{src} → {dst} ({jump}), no API removed between")


def check_version_skew(ctx: Context) -> CheckResult:
    return version_skew(ctx.versions[SOURCE].release, ctx.versions[TARGET].release)
