"""Running a command in a pod's container (``kubectl exec``), for hooks a user gives.

The API server streams exec over a WebSocket; the official client's ``stream`` speaks it (the
only call here that goes through the official client). The command's exit code comes from
the status the server sends on the error channel at the end.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from migrator.errors import ApiError, ClusterUnreachable
from migrator.kube.client import Cluster

ERROR_CHANNEL = 3  # the Status of the finished command


@dataclass(frozen=True)
class ExecResult:
    """How the command ended: its exit code and what it wrote (stdout and stderr together)."""

    exit_code: int
    output: str


def exec_in_pod(
    cluster: Cluster,
    namespace: str,
    pod: str,
    command: Sequence[str],
    *,
    container: str | None = None,
    timeout: float = 60.0,
) -> ExecResult:
    """Run ``command`` in ``pod`` (its ``container``) and wait up to ``timeout`` seconds.

    A command still running at the timeout counts as failed (exit code -1). Errors of the
    API server (no such pod, exec forbidden) are raised as :class:`ApiError`."""
    from kubernetes.client import CoreV1Api
    from kubernetes.client.exceptions import ApiException
    from kubernetes.stream import stream

    api = CoreV1Api(cluster.api_client)
    kwargs = {"container": container} if container else {}
    try:
        ws = stream(
            api.connect_get_namespaced_pod_exec,
            pod,
            namespace,
            command=list(command),
            stderr=True,
            stdin=False,
            stdout=True,
            tty=False,
            _preload_content=False,
            **kwargs,
        )
    except ApiException as exc:
        raise ApiError.from_response(
            exc.status or 0, exc.body, "GET", f"/api/v1/namespaces/{namespace}/pods/{pod}/exec"
        ) from exc
    except OSError as exc:
        raise ClusterUnreachable(cluster.context, cluster.server, str(exc)) from exc
    try:
        ws.run_forever(timeout=timeout)
        if ws.is_open():
            return ExecResult(-1, (ws.read_all() or "") + f"\n(still running after {timeout:.0f}s)")
        status = ws.read_channel(ERROR_CHANNEL)  # before read_all, which drops every channel
        output = ws.read_all() or ""
    finally:
        ws.close()
    return _result(status, output)


def _result(status: str, output: str) -> ExecResult:
    """The exit code from the error channel's Status: Success is 0, a non-zero exit is its
    ``ExitCode`` cause; anything else (the command could not start) is -1, with the message."""
    try:
        doc = json.loads(status) if status else {}
    except ValueError:
        doc = {}
    if not status or doc.get("status") == "Success":
        return ExecResult(0, output)
    for cause in (doc.get("details") or {}).get("causes") or ():
        if cause.get("reason") == "ExitCode":
            try:
                return ExecResult(int(cause.get("message")), output)
            except (TypeError, ValueError):
                break
    return ExecResult(-1, output + str(doc.get("message") or status))
