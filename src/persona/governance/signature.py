"""MLflow webhook signatures (HMAC-SHA256), checked before anything is done (pure).

MLflow signs ``{delivery_id}.{timestamp}.{body}`` with the webhook's secret and sends
``X-MLflow-Signature: v1,<base64 digest>`` with ``X-MLflow-Delivery-Id`` and
``X-MLflow-Timestamp`` (unix seconds; `mlflow.webhooks.delivery`; the names are MLflow's
`mlflow.webhooks.constants`). A request older (or further ahead) than
`GOVERNANCE_WEBHOOK_MAX_AGE_S` is refused too. Within that age a captured delivery can be
replayed; that is harmless, as it only triggers the reconcile, which is idempotent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

from mlflow.webhooks.constants import (
    WEBHOOK_DELIVERY_ID_HEADER,
    WEBHOOK_SIGNATURE_HEADER,
    WEBHOOK_SIGNATURE_VERSION,
    WEBHOOK_TIMESTAMP_HEADER,
)


def sign(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The signature header MLflow sends for `body` (what `check` expects).

    Args:
        secret: The webhook's secret.
        delivery_id: The ``X-MLflow-Delivery-Id`` value.
        timestamp: The ``X-MLflow-Timestamp`` value (unix seconds as text).
        body: The raw request body.

    Returns:
        ``v1,<base64 HMAC-SHA256>``.
    """
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return f"{WEBHOOK_SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def check(
    secret: str, headers: Mapping[str, str], body: bytes, now: float, max_age_s: float
) -> str | None:
    """Why a webhook request must be refused, or None when it is genuine and fresh.

    Args:
        secret: The shared secret (empty: every request is refused).
        headers: The request headers (names in any case).
        body: The raw request body, exactly as received.
        now: The current unix time.
        max_age_s: Oldest (and furthest in the future) timestamp accepted, in seconds.

    Returns:
        A one-line reason, or None.
    """
    if not secret:
        return "no webhook secret is configured (GOVERNANCE_WEBHOOK_SECRET)"
    named = {name.lower(): value for name, value in headers.items()}
    signature = named.get(WEBHOOK_SIGNATURE_HEADER.lower(), "")
    delivery = named.get(WEBHOOK_DELIVERY_ID_HEADER.lower(), "")
    stamp = named.get(WEBHOOK_TIMESTAMP_HEADER.lower(), "")
    if not (signature and delivery and stamp):
        return "missing signature, delivery id or timestamp header"
    try:
        age = now - int(stamp)
    except ValueError:
        return f"bad timestamp {stamp[:40]!r}"
    if abs(age) > max_age_s:
        return f"timestamp {age:.0f} s away from now (more than {max_age_s:g} s)"
    if not hmac.compare_digest(sign(secret, delivery, stamp, body), signature):
        return "bad signature"
    return None
