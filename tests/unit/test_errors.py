"""The error hierarchy: exit codes, and ApiError built from what the server answered."""
from __future__ import annotations

import json

import pytest

from migrator import errors

pytestmark = pytest.mark.unit

FORBIDDEN = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": 'secrets is forbidden: User "bob" cannot list resource "secrets"',
    "reason": "Forbidden",
    "details": {"kind": "secrets"},
    "code": 403,
}


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (errors.MigratorError, 1),
        (errors.ConfigError, 2),
        (errors.KubeconfigNotFound, 2),
        (errors.ContextNotFound, 2),
        (errors.DifferencesInvalid, 2),
        (errors.RulesInvalid, 2),
        (errors.SettingsInvalid, 2),
        (errors.ShiftSettingsInvalid, 2),
        (errors.PlanInvalid, 2),
        (errors.ClusterUnreachable, 3),
        (errors.ApiError, 4),
        (errors.PartialFailure, 5),
        (errors.StoreUnreachable, 6),
        (errors.VerificationFailed, 7),
        (errors.LockHeld, 8),
        (errors.Interrupted, 130),
        (errors.SnapshotCorrupt, 1),
        (errors.PatchTestFailed, 1),
    ],
)
def test_exit_codes(cls: type[errors.MigratorError], code: int) -> None:
    assert issubclass(cls, errors.MigratorError)
    assert cls.exit_code == code


def test_api_error_from_status_body() -> None:
    body = json.dumps(FORBIDDEN).encode()
    exc = errors.ApiError.from_response(403, body, "get", "/api/v1/secrets")
    assert exc.status == 403
    assert exc.reason == "Forbidden"
    assert exc.details == {"kind": "secrets"}
    assert str(exc) == (
        'GET /api/v1/secrets: 403 Forbidden: secrets is forbidden: User "bob" cannot list '
        'resource "secrets"'
    )
    assert exc.hint and "RBAC" in exc.hint


def test_api_error_from_non_json_body_keeps_a_useful_excerpt() -> None:
    body = b"<html>\n<body>502 Bad Gateway</body>\n</html>" + b"x" * 1000
    exc = errors.ApiError.from_response(502, body, "GET", "/apis")
    text = str(exc)
    assert text.startswith("GET /apis: HTTP 502: <html> <body>502 Bad Gateway</body>")
    assert len(text) < 300
    assert exc.status == 502


def test_api_error_from_empty_body() -> None:
    assert str(errors.ApiError.from_response(504, b"", "GET", "/version")) == (
        "GET /version: HTTP 504"
    )


def test_api_error_retry_after_from_status_details() -> None:
    body = json.dumps(
        {"kind": "Status", "code": 429, "reason": "TooManyRequests", "message": "slow down",
         "details": {"retryAfterSeconds": 3}}
    )
    exc = errors.ApiError.from_response(429, body, "GET", "/api/v1/pods")
    assert exc.retry_after == 3.0
    header_wins = errors.ApiError.from_response(429, body, "GET", "/x", retry_after=7.0)
    assert header_wins.retry_after == 7.0


def test_context_not_found_lists_existing_contexts() -> None:
    exc = errors.ContextNotFound("prod", ["old", "new"], "/k/config")
    assert str(exc) == "context 'prod' not found in /k/config (contexts: new, old)"


def test_one_place_says_what_is_temporary() -> None:
    temporary = [
        errors.ClusterUnreachable("old", "https://x", "connection refused"),
        errors.StoreUnreachable("cannot reach the S3 endpoint"),
        errors.LockHeld("another import is running"),
        errors.ApiError("GET /x: 503", status=503),
        errors.ApiError("GET /x: 429", status=429),
    ]
    permanent = [
        errors.ApiError("PATCH /x: 422 Invalid: bad", status=422),
        errors.ApiError("GET /x: 403 Forbidden", status=403),
        errors.ConfigError("bad flag"),
        errors.StoreNotFound("no bucket"),
        errors.SnapshotCorrupt("tampered"),
        errors.PatchError("/spec does not exist"),
        ValueError("not ours"),
    ]
    assert [errors.is_temporary(e) for e in temporary] == [True] * len(temporary)
    assert [errors.is_temporary(e) for e in permanent] == [False] * len(permanent)
    assert isinstance(errors.LockHeld("x"), errors.TemporaryError)


def test_settings_errors_share_one_parent() -> None:
    for cls in (errors.DifferencesInvalid, errors.ShiftSettingsInvalid):
        assert issubclass(cls, errors.SettingsInvalid)
    shift = errors.ShiftSettingsInvalid("traffic.ttl", "must be at least 1 (got 0)")
    assert (str(shift), shift.field, shift.problem) == (
        "traffic.ttl: must be at least 1 (got 0)", "traffic.ttl", "must be at least 1 (got 0)")
    assert shift.hint == "fix the shift's settings; nothing was changed"
    plan = errors.PlanInvalid("plan.yaml", 23, "traffic.steps[2]", "must be between 0 and 100")
    assert str(plan) == "plan.yaml:23: traffic.steps[2]: must be between 0 and 100"
    assert (plan.file, plan.line, plan.field) == ("plan.yaml", 23, "traffic.steps[2]")
    assert str(errors.PlanInvalid("plan.yaml", None, "", "cannot read")) == "plan.yaml: cannot read"


def test_difference_settings_and_patches_are_in_the_hierarchy() -> None:
    exc = errors.DifferencesInvalid("--registry", "'x' is not OLD=NEW")
    assert isinstance(exc, errors.ConfigError)
    assert str(exc) == "--registry: 'x' is not OLD=NEW"
    assert (exc.field, exc.problem) == ("--registry", "'x' is not OLD=NEW")
    assert issubclass(errors.PatchTestFailed, errors.PatchError)
    assert issubclass(errors.PatchError, errors.MigratorError)
