"""Telling people how a run goes: webhooks told of phase changes, alerts and the end.

Each of a plan's notifications is a URL (given, or read from an environment variable,
since a webhook's URL often holds its token) and a format: ``json`` POSTs the event as it
is, ``slack`` POSTs ``{"text": "[migrator] shop-move: import done in 12.3 s"}`` (what a
Slack-compatible incoming webhook reads). An event is a mapping::

    {"type": "phase" | "alert" | "end", "plan": NAME, "phase": NAME, "status": ...,
     "message": ..., "at": ISO time, ...}

A notification never stops or slows the run: sends go through one background thread, each
is tried up to three times, and one that cannot be delivered is a logged warning that names
the notification by its number and format only (its URL may hold a token). ``close`` waits,
a bounded time, for what is queued.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from migrator import __version__
from migrator.migrate.plan import Notification

log = logging.getLogger(__name__)

ATTEMPTS = 3
BACKOFF = 0.5  # seconds before the second attempt, doubled before the third
PREFIX = "[migrator]"
_CLOSE = object()


@dataclass(frozen=True)
class _Target:
    label: str  # "notification 1 of 2 (slack)": how logs name it, never by its URL
    url: str
    format: str


def now_iso() -> str:
    """The current time, UTC, as an event's ``at``."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def slack_text(event: Mapping[str, Any]) -> str:
    """One readable line for a chat: ``[migrator] shop-move: import done in 12.3 s``."""
    kind = str(event.get("type") or "phase")
    phase, status = event.get("phase"), event.get("status")
    message, seconds = event.get("message"), event.get("seconds")
    words: list[str] = []
    if kind == "alert":
        words.append(f"ALERT in {phase}" if phase else "ALERT")
    elif kind == "end":
        words.append(f"run {status}" if status else "run ended")
    else:
        words.append(" ".join(str(w) for w in (phase, status) if w) or "phase")
    line = " ".join(words)
    if isinstance(seconds, int | float) and kind != "alert":
        line += f" in {seconds:.1f} s"
    if message:
        line += f": {message}"
    return f"{PREFIX} {event.get('plan') or 'migration'}: {line}"


def body_of(event: Mapping[str, Any], fmt: str) -> bytes:
    """What a notification of format ``fmt`` POSTs for ``event``."""
    doc: Any = {"text": slack_text(event)} if fmt == "slack" else dict(event)
    return json.dumps(doc, default=str).encode("utf-8")


class Notifier:
    """Deliver run events to a plan's notifications (module doc). Use as a context manager,
    or call :meth:`close` at the end of the run."""

    def __init__(
        self,
        notifications: Sequence[Notification],
        *,
        env: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        attempts: int = ATTEMPTS,
        backoff: float = BACKOFF,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        environ = os.environ if env is None else env
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.sleep = sleep
        self.targets: list[_Target] = []
        total = len(notifications)
        for number, notification in enumerate(notifications, 1):
            label = f"notification {number} of {total} ({notification.format})"
            url = notification.url
            if url is None and notification.url_env:
                url = environ.get(notification.url_env) or None
                if url is None:
                    log.warning(
                        "%s: $%s is not set: it will not be sent", label, notification.url_env
                    )
            if url:
                self.targets.append(_Target(label, url, notification.format))
        self.delivered = 0
        self.failed = 0
        self._queue: queue.Queue[object] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, event: Mapping[str, Any]) -> None:
        """Queue ``event`` for every notification (``at`` is added when missing); returns at
        once and never raises."""
        if not self.targets:
            return
        doc = {**event}
        doc.setdefault("at", now_iso())
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="migrator-notify", daemon=True
                )
                self._thread.start()
        self._queue.put(doc)

    def close(self, wait: float = 30.0) -> None:
        """Deliver what is queued, waiting at most ``wait`` seconds, then stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(_CLOSE)
        thread.join(wait)
        if thread.is_alive():
            log.warning("notifications still being sent after %.0f s: not waiting longer", wait)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _CLOSE:
                return
            assert isinstance(item, dict)
            for target in self.targets:
                try:
                    self._deliver(target, item)
                except Exception:  # a notification must never stop the run
                    self.failed += 1
                    log.warning("%s: could not be sent (unexpected error)", target.label)

    def _deliver(self, target: _Target, event: Mapping[str, Any]) -> None:
        body = body_of(event, target.format)
        reason = ""
        for attempt in range(1, self.attempts + 1):
            if attempt > 1:
                self.sleep(self.backoff * 2 ** (attempt - 2))
            reason, again = self._post(target, body)
            if not reason:
                self.delivered += 1
                return
            if not again:
                break
        self.failed += 1
        log.warning(
            "%s: %s event not delivered after %d attempt(s): %s",
            target.label,
            event.get("type", "an"),
            attempt,
            reason,
        )

    def _post(self, target: _Target, body: bytes) -> tuple[str, bool]:
        """POST ``body``: ("", _) when delivered, else (why, whether to try again). The
        reason never holds the URL."""
        request = urllib.request.Request(
            target.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": f"migrator/{__version__}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
            return "", False
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}", exc.code >= 500 or exc.code == 429
        except urllib.error.URLError as exc:
            why = exc.reason
            text = f"{type(why).__name__}: {getattr(why, 'strerror', None) or why}"
            return text.replace(target.url, "<url>"), True
        except ValueError:
            return "the URL is not valid", False
        except OSError as exc:  # a timeout while reading, a reset connection
            return f"{type(exc).__name__}: {exc.strerror or exc}".replace(target.url, "<url>"), True
