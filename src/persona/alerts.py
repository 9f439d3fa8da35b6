"""Alerts: Telegram, Slack incoming webhook and a generic JSON webhook, chosen by settings.

`send_alert` never raises: a channel that fails is logged and reported in the result, and
the pipeline goes on. A delivery that meets a transient failure (no answer, a timeout,
HTTP 408/425/429/5xx) is retried with exponential backoff (tenacity), `ALERT_ATTEMPTS`
tries in all; the cycle records an alert as sent only when every channel took it, and
sends it again on its next step (`persona.flows`).

Secrets (the Telegram bot token, the Slack and webhook URLs, which carry their own
secrets) never appear in logs or results: URLs are shown by host only and any occurrence
of a secret (or of its URL-encoded form) in an error text or an HTTP log line is masked.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import requests
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from persona.months import Month
from persona.settings import Settings

if TYPE_CHECKING:
    from persona.monitoring.results import CheckRun

log = logging.getLogger(__name__)

MASK = "***"


@dataclass(frozen=True)
class AlertDelivery:
    """What one alert channel answered.

    Attributes:
        channel: ``telegram``, ``slack`` or ``webhook``.
        target: The channel's host only (never a secret).
        ok: Whether the channel answered 2xx.
        status: The HTTP status (None: no answer).
        error: Why it failed, secrets masked (None: it did not).
    """

    channel: str
    target: str
    ok: bool = False
    status: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "channel": self.channel,
            "target": self.target,
            "ok": self.ok,
            "status": self.status,
            "error": self.error,
        }


def _channels(settings: Settings) -> list[tuple[str, str]]:
    """Configured channels as (name, url) pairs."""
    out = []
    if settings.alert_telegram_bot_token and settings.alert_telegram_chat_id:
        base = settings.alert_telegram_api_base.rstrip("/")
        out.append(("telegram", f"{base}/bot{settings.alert_telegram_bot_token}/sendMessage"))
    if settings.alert_slack_webhook_url:
        out.append(("slack", settings.alert_slack_webhook_url))
    if settings.alert_webhook_url:
        out.append(("webhook", settings.alert_webhook_url))
    return out


def _secrets(settings: Settings) -> list[str]:
    """The secrets and their URL-encoded forms (an HTTP error may echo the request path)."""
    urls = [settings.alert_slack_webhook_url, settings.alert_webhook_url]
    values = [settings.alert_telegram_bot_token, *urls]
    values += [urlsplit(u).path for u in urls if u and len(urlsplit(u).path) > 1]
    values = [v for v in values if v]
    return values + [quote(v, safe="/:") for v in values]


def mask(text: str, secrets: list[str]) -> str:
    """Replace every secret (longest first) in `text` by ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def _host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{parts.port}" if parts.port else "")


def format_text(title: str, text: str, fields: Mapping[str, Any]) -> str:
    """Plain-text body: title, text, then one ``key: value`` line per field."""
    lines = [title, text] if text else [title]
    lines += [f"{key}: {value}" for key, value in fields.items()]
    return "\n".join(lines)


def _payload(
    channel: str, settings: Settings, title: str, text: str, fields: Mapping[str, Any]
) -> dict[str, Any]:
    if channel == "telegram":
        return {
            "chat_id": settings.alert_telegram_chat_id,
            "text": format_text(title, text, fields)[:4096],
            "disable_web_page_preview": True,
        }
    if channel == "slack":
        return {"text": format_text(f"*{title}*", text, fields)}
    return {"title": title, "text": text, "fields": dict(fields)}


TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def is_transient(exc: BaseException) -> bool:
    """Whether a failed delivery may succeed if tried again (no answer, 408/425/429/5xx)."""
    if isinstance(exc, requests.HTTPError):
        return exc.response is not None and exc.response.status_code in TRANSIENT_STATUS
    return isinstance(exc, requests.ConnectionError | requests.Timeout)


def _post(url: str, payload: dict[str, Any], settings: Settings) -> int:
    """POST the JSON payload; retry transient failures with exponential backoff.

    Raises:
        requests.RequestException: The last failure (an HTTP error status included).
    """
    body = json.dumps(payload, default=str).encode("utf-8")
    retrying = Retrying(
        stop=stop_after_attempt(settings.alert_attempts),
        wait=wait_exponential(multiplier=0.5, max=settings.alert_timeout_s),
        retry=retry_if_exception(is_transient),
        reraise=True,
    )
    for attempt in retrying:
        with attempt:
            response = requests.post(
                url,
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=settings.alert_timeout_s,
            )
            response.raise_for_status()
    return int(response.status_code)


def send_alert(
    settings: Settings, title: str, text: str, fields: Mapping[str, Any] | None = None
) -> list[AlertDelivery]:
    """Send an alert to every configured channel; never raises.

    Args:
        settings: Alert settings (Telegram token + chat id, Slack URL, webhook URL, timeout).
        title: One-line title, e.g. ``"Drift in 2025-03: retrain"``.
        text: Body (the reasons).
        fields: Extra ``key: value`` facts (month, model version, report path...).

    Returns:
        One `AlertDelivery` per configured channel (empty when none is configured);
        its ``target`` is the host only.
    """
    fields = dict(fields or {})
    channels = _channels(settings)
    if not channels:
        log.info("alert not sent (no alert channel configured): %s", title)
        return []
    secrets = _secrets(settings)
    with _masked_http_logs(secrets):
        return [
            _deliver(settings, channel, url, title, text, fields, secrets)
            for channel, url in channels
        ]


class _Mask(logging.Filter):
    """Mask the secrets in the records of a logger (urllib3 logs request paths at DEBUG)."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = mask(record.getMessage(), self.secrets), None
        return True


@contextmanager
def _masked_http_logs(secrets: list[str]) -> Iterator[None]:
    http_log = logging.getLogger("urllib3.connectionpool")
    masking = _Mask(secrets)
    http_log.addFilter(masking)
    try:
        yield
    finally:
        http_log.removeFilter(masking)


def _deliver(
    settings: Settings,
    channel: str,
    url: str,
    title: str,
    text: str,
    fields: Mapping[str, Any],
    secrets: list[str],
) -> AlertDelivery:
    """Post the alert to one channel; what it answered (never raises)."""
    target = _host(url)
    status: int | None = None
    error: str | None = None
    ok = False
    try:
        payload = _payload(channel, settings, title, text, fields)
        status = _post(url, payload, settings)
        ok = 200 <= status < 300
        log.info("alert sent via %s to %s: %s", channel, target, title)
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        reason = exc.response.reason if exc.response is not None else ""
        error = mask(f"HTTP {status} {reason}", secrets)
    except Exception as exc:  # an alert must never fail the pipeline
        error = mask(f"{type(exc).__name__}: {exc}", secrets)
    if not ok:
        log.warning("alert via %s to %s failed: %s", channel, target, error)
    return AlertDelivery(channel, target, ok, status, error)


def alert_for_check(settings: Settings, month: Month, check: CheckRun) -> list[AlertDelivery]:
    """Send the alert of a monitoring check (its verdict, reasons and report).

    Args:
        settings: Alert settings.
        month: The checked month.
        check: What `monitoring.run_check` returned.

    Returns:
        One delivery result per configured channel (empty when none is configured).
    """
    verdict = check.verdict
    title = f"PersonaOps: {verdict} for {month}"
    text = "; ".join(check.reasons) or verdict
    log.warning("ALERT %s: %s", title, text)
    fields = {
        "month": month,
        "verdict": verdict,
        "reference": str(check.reference_months),
        "model_version": check.model_version,
        "drift_share": check.drift_share,
        "report": check.report_path,
    }
    return send_alert(settings, title, text, fields)


def _candidate_line(c: Mapping[str, Any]) -> str:
    answers = ", ".join(
        f"{a['feature']} {a['candidate']:g} vs {a['nearest']:g}" for a in c.get("answers") or []
    )
    line = (
        f"{c['persona_id']}: {c.get('rows', '?')} respondents this month "
        f"({100 * float(c.get('share') or 0):.1f}% of the month), nearest persona "
        f"{c['nearest_persona']} at distance {float(c['distance']):.1f}"
    )
    return f"{line}; answers that differ most: {answers}" if answers else line


def review_text(month: Month, trained: dict[str, Any]) -> tuple[str, str]:
    """Title and body of the alert for a challenger that needs a person's review.

    A first alert describes the candidates; a reminder says since when the review waits.
    """
    version = trained.get("version")
    review = trained.get("review") or {}
    seen = review.get("months_seen") or [month]
    if trained.get("alert") == "reminder":
        title = (
            f"PersonaOps: reminder, v{version} still waits for review "
            f"(since {review.get('first_month')}, seen {len(seen)} months)"
        )
    else:
        title = f"PersonaOps: challenger v{version} for {month} needs review"
    details = review.get("candidates") or trained.get("candidates_detail") or []
    lines = [
        str(r)
        for r in trained.get("review_reasons") or []
        if not (details and str(r).startswith("candidate "))
    ]
    lines += [_candidate_line(c) for c in details]
    if review.get("picture"):
        lines.append(f"Persona profiles: {review['picture']}")
    naming = f' --name {details[0]["persona_id"]}="<name>"' if details else ""
    lines.append(
        f"Review: persona review. Approve{' with names' if details else ''}: "
        f"persona review approve {version}{naming}; "
        f'or: persona review reject {version} --reason "<why>"'
    )
    return title, "\n".join(lines)


def alert_for_review(
    settings: Settings, month: Month, trained: dict[str, Any]
) -> list[AlertDelivery]:
    """Send the alert (or reminder) of a challenger that waits for a person's review.

    Args:
        settings: Alert settings.
        month: The month whose retrain produced (or saw again) the challenger.
        trained: What `registry.train_challenger` returned.

    Returns:
        One delivery result per configured channel (empty when none is configured).
    """
    title, text = review_text(month, trained)
    log.warning("ALERT %s: %s", title, text.replace("\n", "; "))
    review = trained.get("review") or {}
    fields = {
        "month": month,
        "challenger_version": trained.get("version"),
        "candidates": ",".join(trained.get("candidates") or []),
        "retired": ",".join(trained.get("retired") or []),
        "months_seen": len(review.get("months_seen") or [month]),
        "picture": review.get("picture"),
    }
    return send_alert(settings, title, text, fields)
