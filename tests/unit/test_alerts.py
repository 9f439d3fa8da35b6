"""Alerts against a real local HTTP server that records what it receives."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from persona.alerts import send_alert
from persona.settings import Settings

TOKEN = "123456:SECRET-bot-token-xyz"


class Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.received: list[dict[str, Any]] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Recorder

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append(
            {"path": self.path, "json": json.loads(body), "type": self.headers["Content-Type"]}
        )
        if self.path.startswith("/slow"):
            time.sleep(1.0)
        status = 500 if self.path.startswith("/fail") else 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Recorder]:
    srv = Recorder()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


FIELDS = {"month": "2025-03", "model_version": "1"}


def test_no_channel_is_a_logged_noop(make_settings: Callable[..., Settings], caplog) -> None:
    caplog.set_level(logging.INFO, logger="persona.alerts")
    assert send_alert(make_settings(), "Drift", "text", FIELDS) == []
    assert "no alert channel configured" in caplog.text


def test_all_channels_receive_their_payload(server: Recorder, make_settings, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    cfg = make_settings(
        alert_telegram_bot_token=TOKEN,
        alert_telegram_chat_id="-10042",
        alert_telegram_api_base=server.base,
        alert_slack_webhook_url=f"{server.base}/slack/T000/B000/XXXX",
        alert_webhook_url=f"{server.base}/hook?key=abc",
    )
    results = send_alert(cfg, "Drift in 2025-03: retrain", "unassigned rate 18%", FIELDS)
    assert [(r.channel, r.ok, r.status) for r in results] == [
        ("telegram", True, 200),
        ("slack", True, 200),
        ("webhook", True, 200),
    ]
    telegram, slack, hook = server.received
    assert telegram["path"] == f"/bot{TOKEN}/sendMessage"
    assert telegram["json"]["chat_id"] == "-10042"
    assert telegram["json"]["text"].splitlines() == [
        "Drift in 2025-03: retrain",
        "unassigned rate 18%",
        "month: 2025-03",
        "model_version: 1",
    ]
    assert slack["path"] == "/slack/T000/B000/XXXX"
    assert slack["json"]["text"].startswith("*Drift in 2025-03: retrain*\n")
    assert hook["path"] == "/hook?key=abc"
    assert hook["json"] == {
        "title": "Drift in 2025-03: retrain",
        "text": "unassigned rate 18%",
        "fields": FIELDS,
    }
    assert all(r["type"] == "application/json" for r in server.received)
    assert TOKEN not in caplog.text and "XXXX" not in caplog.text
    assert all(TOKEN not in json.dumps(r.to_dict()) for r in results)


def test_failures_are_logged_not_raised(server: Recorder, make_settings, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    cfg = make_settings(
        alert_telegram_bot_token=TOKEN,
        alert_telegram_chat_id="1",
        alert_telegram_api_base=f"{server.base}/fail",
        alert_slack_webhook_url=f"http://127.0.0.1:{_free_port()}/slack/{TOKEN}",
        alert_webhook_url=f"{server.base}/slow/hook",
        alert_timeout_s=0.3,
    )
    results = send_alert(cfg, "Drift", "text", FIELDS)
    by_channel = {r.channel: r for r in results}
    assert by_channel["telegram"].status == 500 and not by_channel["telegram"].ok
    assert not by_channel["slack"].ok and "refused" in str(by_channel["slack"].error).lower()
    assert not by_channel["webhook"].ok and "timed out" in str(by_channel["webhook"].error)
    assert caplog.text.count("failed") == 3
    assert TOKEN not in caplog.text
    assert all(TOKEN not in json.dumps(r.to_dict()) for r in results)


def test_token_in_error_text_is_masked(server: Recorder, make_settings, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    # a refused connection echoes the URL path (with the token, URL-encoded) in its error
    token = "123 SECRET-with-space"
    cfg = make_settings(
        alert_telegram_bot_token=token,
        alert_telegram_chat_id="1",
        alert_telegram_api_base=f"http://127.0.0.1:{_free_port()}",
        alert_slack_webhook_url=f"http://127.0.0.1:{_free_port()}/services/SECRET-path",
    )
    results = send_alert(cfg, "Drift", "text", {})
    for result in results:
        assert not result.ok and "***" in str(result.error), result
        assert "SECRET" not in str(result.error)
    assert "SECRET" not in caplog.text


class Flaky(ThreadingHTTPServer):
    """A webhook receiver that answers 503 to its first `failures` posts, then 200."""

    daemon_threads = True

    def __init__(self, failures: int) -> None:
        super().__init__(("127.0.0.1", 0), FlakyHandler)
        self.failures = failures
        self.posts: list[tuple[float, int]] = []  # (time, status answered)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class FlakyHandler(BaseHTTPRequestHandler):
    server: Flaky

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status = 503 if len(self.server.posts) < self.server.failures else 200
        self.server.posts.append((time.monotonic(), status))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def flaky() -> Iterator[Callable[[int], Flaky]]:
    servers: list[Flaky] = []

    def start(failures: int) -> Flaky:
        srv = Flaky(failures)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def test_a_transient_failure_is_retried_with_backoff(flaky, make_settings) -> None:
    hook = flaky(2)
    cfg = make_settings(alert_webhook_url=hook.url, alert_attempts=3)
    [result] = send_alert(cfg, "Drift", "text", FIELDS)
    assert result.ok and result.status == 200, result
    assert [status for _, status in hook.posts] == [503, 503, 200]
    gaps = [b[0] - a[0] for a, b in zip(hook.posts, hook.posts[1:], strict=False)]
    assert gaps[0] >= 0.4 and gaps[1] >= 0.9, gaps  # exponential: 0.5 s, then 1 s


def test_retries_stop_after_alert_attempts(flaky, make_settings) -> None:
    hook = flaky(5)
    cfg = make_settings(alert_webhook_url=hook.url, alert_attempts=2)
    [result] = send_alert(cfg, "Drift", "text", FIELDS)
    assert not result.ok and result.status == 503 and "HTTP 503" in str(result.error)
    assert [status for _, status in hook.posts] == [503, 503]


def test_a_client_error_is_not_retried(server: Recorder, make_settings) -> None:
    cfg = make_settings(alert_webhook_url=f"{server.base}/missing", alert_attempts=3)
    server.RequestHandlerClass = type("NotFound", (Handler,), {"do_POST": _not_found})
    [result] = send_alert(cfg, "Drift", "text", FIELDS)
    assert not result.ok and result.status == 404
    assert len(server.received) == 1


def _not_found(self: Handler) -> None:
    self.rfile.read(int(self.headers.get("Content-Length", 0)))
    self.server.received.append({"path": self.path})
    self.send_response(404)
    self.send_header("Content-Length", "0")
    self.end_headers()
