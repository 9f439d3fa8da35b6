"""The governance receiver: MLflow calls it when an alias moves; it reconciles the champion.

A small Flask app of its own (run by gunicorn: `persona governance serve`), apart from the
API, so the internet-facing API holds no database role and writes nothing. It holds the
governance identities: the database role that writes `model_events`, MLflow credentials
that may clear ``challenger`` and set tags, the alert tokens and the webhook secret.

- ``POST /webhook``: an MLflow webhook. A request whose signature, delivery id or
  timestamp does not check out (`signature.check`) gets 401 and changes nothing. A genuine
  ``model_version_alias`` event on ``champion`` of `MODEL_NAME` wakes the reconcile thread
  and is answered 202 at once (`registry.governance.sync_champion`: audit row, tags,
  ``challenger`` cleared, gates after the fact, alert when they fail, relabelling: longer
  than MLflow's webhook timeout allows); other events are acknowledged and ignored.
- Webhooks are best effort (MLflow sends each one once, with a few retries), so the same
  reconcile also runs in a thread of the receiver when it starts (a move made while it was
  down is recorded at once) and every `GOVERNANCE_RECONCILE_INTERVAL_S` after, and at the
  start of every cycle (`flows.check_step`).
- ``GET /health``: alive, and the last reconcile's outcome.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from flask import Flask, Response, jsonify, request
from sqlalchemy import Engine

from persona.errors import PersonaError
from persona.governance.signature import check

# Imported when the worker boots (MLflow is heavy), not on the first webhook: the receiver
# answers /health only once it can reconcile at once.
from persona.registry.governance import sync_champion
from persona.settings import Settings
from persona.store.engine import open_store

log = logging.getLogger(__name__)
CHAMPION = "champion"


class Reconciler:
    """Runs the champion reconcile one at a time in this process and keeps its outcome.

    Args:
        settings: Store, registry, gate and alert settings.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.last: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        self._wake = threading.Event()

    def run(self, why: str) -> dict[str, Any]:
        """Reconcile once (the store's champion lock serialises it with other processes).

        Args:
            why: What triggered it (``webhook``, ``schedule``), logged and kept.

        Returns:
            `SyncResult.to_dict()`.

        Raises:
            PersonaError: The registry or the store cannot be read or written.
        """
        with self._lock:
            if self._engine is None:
                self._engine = open_store(self.settings.database_url, self.settings)
            try:
                result = sync_champion(self.settings, self._engine).to_dict()
            except PersonaError as exc:
                self.last = {"at": time.time(), "trigger": why, "error": str(exc)}
                raise
            self.last = {"at": time.time(), "trigger": why, "result": result}
        if result["moved"]:
            log.warning("reconcile (%s) recorded a champion move: %s", why, json.dumps(result))
        return result

    def wake(self) -> None:
        """Ask the reconcile thread for a run now (several wakes during a run make one more)."""
        self._wake.set()

    def serve(self, interval_s: float) -> None:
        """Reconcile when woken, and at start and every `interval_s` when it is above 0.

        Runs for ever in the receiver's thread; failures are logged, not raised (the next
        wake or interval tries again).
        """
        if interval_s > 0:
            self._run_logged("schedule")
        while True:
            woken = self._wake.wait(interval_s if interval_s > 0 else None)
            self._wake.clear()
            self._run_logged("webhook" if woken else "schedule")

    def _run_logged(self, why: str) -> None:
        try:
            self.run(why)
        except Exception as exc:  # the thread outlives a registry or store outage
            log.error("%s reconcile failed: %s", why, exc)


def create_receiver(settings: Settings, *, schedule: bool = True) -> Flask:
    """Build the receiver app (and start its scheduled reconcile unless told not to).

    Args:
        settings: `GOVERNANCE_*`, `MODEL_NAME` and what the reconcile needs.
        schedule: Start the reconcile thread: on every webhook, and at start and every
            `GOVERNANCE_RECONCILE_INTERVAL_S` (0: webhooks only).

    Returns:
        The Flask app.
    """
    reconciler = Reconciler(settings)
    app = Flask("persona.governance")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if schedule:
        interval = settings.governance_reconcile_interval_s
        threading.Thread(
            target=reconciler.serve, args=(interval,), name="reconcile", daemon=True
        ).start()

    @app.post("/webhook")
    def webhook() -> tuple[Response, int]:
        body = request.get_data(cache=False)
        secret = settings.governance_webhook_secret
        max_age = settings.governance_webhook_max_age_s
        problem = check(secret, dict(request.headers), body, time.time(), max_age)
        if problem is not None:
            log.warning("refused a webhook from %s: %s", request.remote_addr, problem)
            return jsonify(error=f"refused: {problem}"), 401
        event = _event(body)
        if event is None or not _moves_champion(event, settings.model_name):
            return jsonify(ignored=None if event is None else event.get("entity")), 200
        reconciler.wake()
        return jsonify(queued=True), 202

    @app.get("/health")
    def health() -> tuple[Response, int]:
        return jsonify(status="ok", last=reconciler.last), 200

    return app


def _event(body: bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(body)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def _moves_champion(event: dict[str, Any], model_name: str) -> bool:
    """Whether a webhook event is about the ``champion`` alias of our model."""
    data = event.get("data")
    return (
        event.get("entity") == "model_version_alias"
        and isinstance(data, dict)
        and data.get("name") == model_name
        and data.get("alias") == CHAMPION
    )
