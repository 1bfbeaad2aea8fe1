"""Notifications against a real local HTTP server: the JSON event and the Slack line as
POSTed, delivery on the third attempt after two 500s, and an unreachable URL that is a
warning (never an exception, never the URL in the log)."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from migrator.migrate.notify import Notifier, slack_text
from migrator.migrate.plan import Notification


class Hook:
    """A webhook: records each POST (path, body); answers the statuses queued, then 200."""

    def __init__(self) -> None:
        self.received: list[tuple[str, int, dict]] = []
        self.statuses: list[int] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = hook.statuses.pop(0) if hook.statuses else 200
                hook.received.append((self.path, status, json.loads(body)))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def delivered(self) -> list[tuple[str, dict]]:
        return [(path, doc) for path, status, doc in self.received if status == 200]


@pytest.fixture
def webhook() -> Iterator[Hook]:
    hook = Hook()
    thread = threading.Thread(target=hook.server.serve_forever, daemon=True)
    thread.start()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


EVENT = {
    "type": "phase",
    "plan": "shop-move",
    "phase": "import",
    "status": "done",
    "message": "",
    "seconds": 12.34,
    "at": "2026-12-06T10:00:00+00:00",
}


def test_json_and_slack_notifications_get_their_own_bodies(webhook: Hook) -> None:
    notifier = Notifier(
        [Notification(url=webhook.url + "/json"), Notification(url_env="HOOK_URL", format="slack")],
        env={"HOOK_URL": webhook.url + "/slack?token=s3cr3t"},
    )
    with notifier:
        notifier.send(EVENT)
        notifier.send(
            {
                "type": "alert",
                "plan": "shop-move",
                "phase": "import",
                "message": "no progress for 600 s",
            }
        )
    got = webhook.delivered()
    assert ("/json", EVENT) in got
    assert ("/slack?token=s3cr3t", {"text": "[migrator] shop-move: import done in 12.3 s"}) in got
    assert (
        "/slack?token=s3cr3t",
        {"text": "[migrator] shop-move: ALERT in import: no progress for 600 s"},
    ) in got
    alert = next(doc for path, doc in got if path == "/json" and doc["type"] == "alert")
    assert alert["at"].endswith("+00:00")  # added when the event had none
    assert notifier.delivered == 4 and notifier.failed == 0


def test_a_webhook_failing_twice_gets_the_event_on_the_third_attempt(webhook: Hook) -> None:
    webhook.statuses = [500, 503]
    waits: list[float] = []
    with Notifier([Notification(url=webhook.url)], sleep=waits.append) as notifier:
        notifier.send(EVENT)
    assert [status for _, status, _ in webhook.received] == [500, 503, 200]
    assert webhook.delivered() == [("/", EVENT)]
    assert len(waits) == 2 and waits[1] > waits[0]


def test_a_refusal_that_will_not_heal_is_not_retried(webhook: Hook, caplog) -> None:
    webhook.statuses = [404]
    with (
        caplog.at_level(logging.WARNING),
        Notifier([Notification(url=webhook.url)], sleep=lambda s: None) as notifier,
    ):
        notifier.send(EVENT)
    assert len(webhook.received) == 1 and notifier.failed == 1
    assert "notification 1 of 1 (json)" in caplog.text and "HTTP 404" in caplog.text


def test_an_unreachable_url_is_a_warning_without_the_url(caplog) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/services/T000/B000/s3cr3t-token"
    with caplog.at_level(logging.WARNING):
        notifier = Notifier(
            [
                Notification(url="http://127.0.0.1:1/x", format="json"),
                Notification(url=url, format="slack"),
                Notification(url_env="UNSET_HOOK_URL"),
            ],
            env={},
            sleep=lambda s: None,
            timeout=2,
        )
        notifier.send(EVENT)  # never raises
        notifier.close()
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        m.startswith("notification 2 of 3 (slack): phase event not delivered after 3")
        for m in messages
    )
    assert sum("UNSET_HOOK_URL" in m for m in messages) == 1  # warned once, at the start
    assert not any("s3cr3t" in m or str(port) in m for m in messages)
    assert notifier.failed == 2 and notifier.delivered == 0


def test_the_slack_line_of_an_end_event() -> None:
    assert (
        slack_text(
            {
                "type": "end",
                "plan": "p",
                "status": "failed",
                "message": "verify: 2 missing",
                "seconds": 61,
            }
        )
        == "[migrator] p: run failed in 61.0 s: verify: 2 missing"
    )
