"""Alerts against a real local HTTP server that records what it receives."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Iterator

import pytest

from persona.alerts import send_alert
from persona.settings import Settings
from tests.webhook import Webhook

TOKEN = "123456:SECRET-bot-token-xyz"


@pytest.fixture
def server() -> Iterator[Webhook]:
    with Webhook() as srv:
        yield srv


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


FIELDS = {"month": "2025-03", "model_version": "1"}


def test_no_channel_is_a_logged_noop(make_settings: Callable[..., Settings], caplog) -> None:
    caplog.set_level(logging.INFO, logger="persona.alerts")
    assert send_alert(make_settings(), "Drift", "text", FIELDS) == []
    assert "no alert channel configured" in caplog.text


def test_all_channels_receive_their_payload(server: Webhook, make_settings, caplog) -> None:
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
    telegram, slack, hook = server.posts
    assert telegram.path == f"/bot{TOKEN}/sendMessage"
    assert telegram.json["chat_id"] == "-10042"
    assert telegram.json["text"].splitlines() == [
        "Drift in 2025-03: retrain",
        "unassigned rate 18%",
        "month: 2025-03",
        "model_version: 1",
    ]
    assert slack.path == "/slack/T000/B000/XXXX"
    assert slack.json["text"].startswith("*Drift in 2025-03: retrain*\n")
    assert hook.path == "/hook?key=abc"
    assert hook.json == {
        "title": "Drift in 2025-03: retrain",
        "text": "unassigned rate 18%",
        "fields": FIELDS,
    }
    assert all(p.content_type == "application/json" for p in server.posts)
    assert TOKEN not in caplog.text and "XXXX" not in caplog.text
    assert all(TOKEN not in json.dumps(r.to_dict()) for r in results)


def test_failures_are_logged_not_raised(make_settings, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    with Webhook([500]) as failing, Webhook(delay_s=1.0) as slow:
        cfg = make_settings(
            alert_telegram_bot_token=TOKEN,
            alert_telegram_chat_id="1",
            alert_telegram_api_base=failing.base,
            alert_slack_webhook_url=f"http://127.0.0.1:{_free_port()}/slack/{TOKEN}",
            alert_webhook_url=slow.url,
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


def test_token_in_error_text_is_masked(make_settings, caplog) -> None:
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


def test_a_transient_failure_is_retried_with_backoff(make_settings) -> None:
    with Webhook([503, 503, 200]) as hook:
        cfg = make_settings(alert_webhook_url=hook.url, alert_attempts=3)
        [result] = send_alert(cfg, "Drift", "text", FIELDS)
    assert result.ok and result.status == 200, result
    assert hook.statuses == [503, 503, 200]
    gaps = [b.at - a.at for a, b in zip(hook.posts, hook.posts[1:], strict=False)]
    assert gaps[0] >= 0.4 and gaps[1] >= 0.9, gaps  # exponential: 0.5 s, then 1 s


def test_retries_stop_after_alert_attempts(make_settings) -> None:
    with Webhook([503]) as hook:
        cfg = make_settings(alert_webhook_url=hook.url, alert_attempts=2)
        [result] = send_alert(cfg, "Drift", "text", FIELDS)
    assert not result.ok and result.status == 503 and "HTTP 503" in str(result.error)
    assert hook.statuses == [503, 503]


def test_a_client_error_is_not_retried(make_settings) -> None:
    with Webhook([404]) as hook:
        cfg = make_settings(alert_webhook_url=hook.url, alert_attempts=3)
        [result] = send_alert(cfg, "Drift", "text", FIELDS)
    assert not result.ok and result.status == 404
    assert hook.statuses == [404]
