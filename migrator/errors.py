"""The one exception hierarchy of migrator.

Every error a user can act on is a :class:`MigratorError`. Each class carries the process exit
code the CLI uses (the CLI holds the only mapping from exception to exit code, and reads it
from here) and an optional ``hint``: what the user can do about it. Raise them ``from`` the
underlying exception so ``-v`` shows the whole chain.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

# A non-JSON response body (an HTML page from a proxy, a plain-text 503) is quoted in the
# message up to this many characters: enough to recognise it, never a wall of text.
_BODY_EXCERPT = 200


class MigratorError(Exception):
    """Root of every error migrator raises on purpose; exit code 1 unless a child says else."""

    exit_code: ClassVar[int] = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    @property
    def temporary(self) -> bool:
        """True if the same request, sent again later, may well succeed (:func:`is_temporary`)."""
        return isinstance(self, TemporaryError)

    def __reduce__(self) -> tuple[Any, ...]:
        # Whole, with its hint and the fields a child adds, when it crosses to or from a
        # worker process (the default pickles the message alone and calls the class with it).
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[MigratorError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class TemporaryError(MigratorError):
    """Something outside migrator is not there right now: a cluster or a store that does not
    answer, a lock another run holds. Trying again later may well succeed.

    The one rule for every stage: a per-object refusal is collected in the report and the rest
    goes on; a temporary error that outlasts the retry budget stops the stage at once, with
    everything finished so far recorded, and the same command run again resumes from there. A
    gated step (a traffic shift) retries a temporary failure and rolls back on a permanent one.
    """


def is_temporary(exc: BaseException) -> bool:
    """The one place that says whether a failure is temporary (anything else is permanent)."""
    return isinstance(exc, MigratorError) and exc.temporary


class Interrupted(MigratorError):
    """The run is stopping (interrupted by the user, or another part of it failed)."""

    exit_code: ClassVar[int] = 130


class ConfigError(MigratorError):
    """The user's input (kubeconfig, options, plan file) cannot be used as given."""

    exit_code: ClassVar[int] = 2


class KubeconfigNotFound(ConfigError):
    """No kubeconfig file could be read at the paths we were given or defaulted to."""

    def __init__(self, paths: Sequence[str], reason: str = "no such file") -> None:
        self.paths = list(paths)
        self.reason = reason
        where = ", ".join(self.paths) or "(no path)"
        super().__init__(
            f"cannot read kubeconfig {where}: {reason}",
            hint="pass --kubeconfig FILE or set KUBECONFIG to an existing file",
        )


class ContextNotFound(ConfigError):
    """The requested context (or the current-context) is not in the kubeconfig."""

    def __init__(self, context: str | None, available: Sequence[str], source: str) -> None:
        self.context = context
        self.available = sorted(available)
        self.source = source
        existing = ", ".join(self.available) if self.available else "none"
        if context is None:
            text = f"no current-context set in {source} (contexts: {existing})"
        else:
            text = f"context {context!r} not found in {source} (contexts: {existing})"
        super().__init__(
            text,
            hint="name one of the contexts listed (--from / --to CONTEXT), or fix the "
            "kubeconfig (--kubeconfig FILE, $KUBECONFIG)",
        )


class ClusterUnreachable(TemporaryError):
    """The API server could not be reached (refused, reset, timed out, TLS failure)."""

    exit_code: ClassVar[int] = 3

    def __init__(self, context: str, server: str, reason: str) -> None:
        self.context = context
        self.server = server
        self.reason = reason
        super().__init__(
            f"cannot reach cluster {context!r} at {server}: {reason}",
            hint="check that the API server is running and reachable from here",
        )


# Statuses that say "not now" rather than "no": the same request may succeed later.
TRANSIENT_STATUSES: frozenset[int] = frozenset({429, 500, 502, 503, 504})
# 500s that are a "no" all the same: the API server reports a request it cannot even parse
# as an internal error (server-side apply of a field its schema lacks), and the same request
# gets the same answer however often it is sent.
PERMANENT_500_MESSAGES: tuple[str, ...] = ("failed to create typed patch object",)

# Hints for statuses whose cause the user can usually fix on their side.
_STATUS_HINTS: Mapping[int, str] = {
    401: "the credentials in the kubeconfig were rejected; refresh or replace them",
    403: "the kubeconfig user lacks RBAC permission for this request",
    429: "the API server is throttling requests; retry later or lower the concurrency",
}


class ApiError(MigratorError):
    """The API server answered with a non-2xx status.

    Built from the Kubernetes ``Status`` body when there is one. The message names the
    request (method and path) and the server's words; it never includes a request body, which
    may carry secret data.
    """

    exit_code: ClassVar[int] = 4

    def __init__(
        self,
        message: str,
        *,
        status: int,
        reason: str = "",
        details: Mapping[str, Any] | None = None,
        method: str = "",
        path: str = "",
        retry_after: float | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint if hint is not None else _STATUS_HINTS.get(status))
        self.status = status
        self.reason = reason
        self.details = dict(details or {})
        self.method = method
        self.path = path
        self.retry_after = retry_after

    @property
    def temporary(self) -> bool:
        if self.status == 500 and any(m in str(self) for m in PERMANENT_500_MESSAGES):
            return False
        return self.status in TRANSIENT_STATUSES

    @classmethod
    def from_response(
        cls,
        status: int,
        body: bytes | str | None,
        method: str,
        path: str,
        *,
        retry_after: float | None = None,
    ) -> ApiError:
        """Build the error from a response status and body (a ``Status`` JSON or anything else).

        ``retry_after`` is the parsed ``Retry-After`` header, if any; otherwise the Status'
        ``details.retryAfterSeconds`` is used.
        """
        raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
        doc = _parse_status(raw)
        request = f"{method.upper()} {path}"
        if doc is None:
            excerpt = " ".join(raw.split())[:_BODY_EXCERPT]
            text = f"{request}: HTTP {status}" + (f": {excerpt}" if excerpt else "")
            return cls(text, status=status, method=method, path=path, retry_after=retry_after)
        code: int = doc["code"] if isinstance(doc.get("code"), int) else status
        reason = str(doc.get("reason") or "")
        details: dict[str, Any] = doc["details"] if isinstance(doc.get("details"), dict) else {}
        server_message = str(doc.get("message") or reason or "no message")
        if retry_after is None and isinstance(details.get("retryAfterSeconds"), int | float):
            retry_after = float(details["retryAfterSeconds"])
        label = f"{code} {reason}" if reason else str(code)
        return cls(
            f"{request}: {label}: {server_message}",
            status=code,
            reason=reason,
            details=details,
            method=method,
            path=path,
            retry_after=retry_after,
        )


def _parse_status(raw: str) -> dict[str, Any] | None:
    """The decoded body if it looks like a Kubernetes ``Status`` object, else None."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    if isinstance(doc, dict) and (doc.get("kind") == "Status" or "message" in doc):
        return doc
    return None


class PartialFailure(MigratorError):
    """The work finished for most objects but some failed; the report lists which."""

    exit_code: ClassVar[int] = 5

    def __init__(self, message: str = "partially done", *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)


class NotServed(MigratorError):
    """The cluster does not serve a group/version/resource (yet: a CRD may bring it)."""


class SnapshotIdInvalid(ConfigError):
    """A snapshot id that is not a plain name (a path, ``..``, characters a store refuses)."""


class StoreError(MigratorError):
    """The object store (local directory or S3 bucket) cannot be used."""

    exit_code: ClassVar[int] = 6


class StoreNotFound(StoreError):
    """The bucket or directory named by the store URL does not exist."""


class StoreKeyNotFound(StoreError):
    """One key asked for is not in the store (the store itself exists)."""

    def __init__(self, message: str, *, key: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.key = key


class StoreAccessDenied(StoreError):
    """The store refused our credentials or lacks a permission we need."""


class StoreUnreachable(StoreError, TemporaryError):
    """The store's endpoint could not be reached (refused, DNS failure, timeout)."""


class SnapshotError(MigratorError):
    """A snapshot cannot be written or read as asked."""


class SnapshotNotFound(SnapshotError):
    """No snapshot with this id exists in the store."""


class SnapshotIncomplete(SnapshotError):
    """The snapshot has parts but no manifest: its export was interrupted or is still running."""


class SnapshotExists(SnapshotError):
    """A complete snapshot with this id already exists and overwriting was not asked for."""


class SnapshotCorrupt(SnapshotError):
    """A snapshot's manifest or a part of it is missing or fails its checksum."""

    def __init__(self, message: str, *, part: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.part = part


class DecryptionError(SnapshotError):
    """The snapshot is encrypted and the key is missing or is not the one it was written with."""


class SettingsInvalid(ConfigError):
    """One setting of a settings mapping (a settings file's key, a flag) is wrong: ``field``
    names it by its path (``volumes.parallel``, ``traffic.steps[2]``), ``problem`` says
    what is wrong with it. :class:`migrator.fields.Fields` raises it (or a child)."""

    def __init__(self, field_name: str, problem: str, *, hint: str | None = None) -> None:
        super().__init__(f"{field_name}: {problem}" if field_name else problem, hint=hint)
        self.field = field_name
        self.problem = problem


class PlanInvalid(ConfigError):
    """The migration plan file does not validate: ``FILE:LINE: FIELD: PROBLEM``, with the
    line of the field (or of the nearest part of it the file has; None when the file cannot
    be read at all). Nothing was changed."""

    def __init__(self, file: str, line: int | None, field_name: str, problem: str) -> None:
        where = f"{file}:{line}: " if line is not None else f"{file}: "
        where += f"{field_name}: " if field_name else ""
        super().__init__(where + problem, hint="fix the plan file; nothing was changed")
        self.file = file
        self.line = line
        self.field = field_name
        self.problem = problem


class DifferencesInvalid(SettingsInvalid):
    """One cluster-difference setting (a flag or a key of the rules file) is wrong; ``field``
    names it."""


class PatchError(MigratorError):
    """A JSON Patch operation or pointer cannot apply to a document (a rule's operation)."""


class PatchTestFailed(PatchError):
    """A JSON Patch ``test`` operation found another value: the rule does not apply."""


class RulesInvalid(ConfigError):
    """The transform rules file does not validate; the message names file, rule and field."""

    def __init__(self, file: str, where: str, problem: str) -> None:
        self.file = file
        self.where = where
        self.problem = problem
        super().__init__(
            f"{file}: {where}: {problem}" if where else f"{file}: {problem}",
            hint="fix the rules file; nothing was read or written",
        )


class ValidationRejected(MigratorError):
    """The target API server rejected some transformed objects in a server-side dry-run."""


class NeedsAttention(MigratorError):
    """Some objects cannot move as they are: a person must review, accept a loss or replace."""


class LockHeld(TemporaryError):
    """Another run holds the lock it needs (an import into the same cluster, say) and its
    holder is alive; or this run lost its lock to another one while it stalled."""

    exit_code: ClassVar[int] = 8


class VerificationFailed(MigratorError):
    """The target does not match the snapshot: objects missing or differing, or not ready."""

    exit_code: ClassVar[int] = 7


# --- traffic shifts ------------------------------------------------------------------------


class ShiftSettingsInvalid(SettingsInvalid):
    """One setting of a traffic shift (a flag, or a key of its settings file) is wrong;
    ``field`` names it by its path (``traffic.steps[2]``)."""

    def __init__(self, field_name: str, problem: str, *, hint: str | None = None) -> None:
        super().__init__(
            field_name, problem, hint=hint or "fix the shift's settings; nothing was changed"
        )


class ShiftRolledBack(MigratorError):
    """A gate failed (or the shift was aborted, or a step could not be written) and every name
    was put back on the old cluster's targets; the message says why."""

    exit_code: ClassVar[int] = 9


class ShiftPaused(MigratorError):
    """The shift waits for a person's approval before its next step."""

    exit_code: ClassVar[int] = 10


class RecordsChanged(MigratorError):
    """The DNS records are not what the shift expects: someone (or something) else changed
    them, so writing ours would overwrite their change. Nothing was written over them."""

    exit_code: ClassVar[int] = 11

    def __init__(self, message: str, *, names: Sequence[str] = (), hint: str | None = None) -> None:
        super().__init__(
            message,
            hint=hint
            or "look at the records and at who changed them; then run the same command with "
            "--take-over to adopt them as they are (or --abort --take-over to put back the "
            "records saved before the shift)",
        )
        self.names = list(names)


class ExternalDnsOwned(ConfigError):
    """external-dns owns the records (its TXT registry says so): writing them directly would
    make the two fight."""


class DnsError(MigratorError):
    """The DNS provider refused a request or failed (Route53, an RFC2136 server); ``code``
    is the provider's own name for the error, when it gave one."""

    exit_code: ClassVar[int] = 12

    def __init__(self, message: str, *, code: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code


class DnsAuthError(DnsError):
    """The DNS provider refused our credentials (a TSIG key, AWS keys): nothing was changed."""


class DnsUnreachable(DnsError, TemporaryError):
    """The DNS provider did not answer in time, or asked us to slow down."""


class BatchInvalid(DnsError):
    """A change batch breaks a rule of the provider; it was checked before sending and not
    sent (some servers, moto among them, accept what the real one refuses)."""

    def __init__(self, rule: str, problem: str) -> None:
        super().__init__(f"invalid change batch ({rule}): {problem}")
        self.rule = rule
        self.problem = problem


class GateError(MigratorError):
    """A health gate could not run as configured (its command does not exist, say): the shift
    rolls back, as it would for a failed check."""


class GateUnavailable(GateError, TemporaryError):
    """A health gate could not measure right now (its command timed out or exited 75,
    EX_TEMPFAIL): the check is tried again."""


class HookFailed(MigratorError):
    """A user's hook (a command on this machine, or a Job) failed on its last attempt; the
    message names where it is in the plan, what ran and the last lines of its output;
    ``result`` is how it ended, as its report holds it."""

    exit_code: ClassVar[int] = 13

    def __init__(
        self,
        message: str,
        *,
        where: str,
        result: Mapping[str, Any] | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.where = where
        self.result = dict(result or {})


class ScaleDownFailed(MigratorError):
    """The old cluster's workloads did not all stop in time at teardown; what was scaled
    down stays so, its replicas recorded on it (scaling up undoes it)."""


class VolumeError(MigratorError):
    """The volume mover cannot back up, restore or verify a volume as asked."""


class VolumeNotFound(VolumeError):
    """No complete pass of this volume name is in the store (or the pass asked for)."""


class UnsafeEntry(VolumeError):
    """A volume manifest entry would write outside the restore target: an absolute path, a
    ``..`` component, a symlink pointing out, or a path through a symlink. Nothing of the
    restore was written."""


class QuiesceFailed(VolumeError):
    """The workloads that write to the volumes could not be stopped (or a hook failed) before
    a final pass: the pass did not run, and what was stopped was started again."""


class SyncFailed(VolumeError):
    """A volume sync could not run at all (its credentials Secret, its claims); no volume
    was moved. Per-volume failures are not this: they are in the report (exit code 5)."""


class PreflightFailed(MigratorError):
    """A preflight check of a plan failed: nothing was changed."""

    exit_code: ClassVar[int] = 14


class PhaseFailed(MigratorError):
    """A phase of a migration run failed; the run stopped there, its journal kept, so
    ``migrator resume`` goes on from that phase once the cause is fixed."""

    exit_code: ClassVar[int] = 15

    def __init__(self, phase: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"phase {phase} failed: {message}", hint=hint)
        self.phase = phase


class RunPaused(MigratorError):
    """A migration run stopped at a step boundary because a person asked it to pause (or a
    traffic step waits for approval); ``migrator resume`` goes on."""

    exit_code: ClassVar[int] = 10


class RunRefused(MigratorError):
    """A command that would act on a run (teardown, rollback, a second migrate) refused:
    what it needs first is in the message."""

    exit_code: ClassVar[int] = 16
