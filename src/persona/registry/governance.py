"""Governance of champion moves made outside the platform (MLflow UI, plain client).

The platform moves ``champion`` only through `promotion.promote` / `rollback`, which
record a `model_events` row under the champion lock. Anyone with registry access can also
move the alias directly. `sync_champion` notices such a move — the alias points at
another version than the audit trail ends with — and governs it after the fact:

1. a `model_events` row ``promote`` with actor ``external`` and the previous champion;
2. the ``promoted`` / ``replaced_by`` tags a platform promotion sets;
3. ``challenger`` cleared when it pointed at the new champion;
4. the promotion gates evaluated (new champion vs previous one), the verdict stored as the
   version's ``external_gates`` tag, and an alert sent when they fail or cannot run;
5. the months the previous champion labelled since the drift relabelled (`relabel`).

It runs at the start of every monthly cycle, as `persona model sync`, and in the
governance receiver (`persona.governance.receiver`) when MLflow's webhook says an alias
moved and on its schedule; never in the API, which holds no database role. Concurrent
callers record one row: the check and the insert share the champion lock.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace

from sqlalchemy import Engine

from persona import alerts
from persona.errors import PersonaError
from persona.registry.promotion import gates_for, tag_move
from persona.registry.relabel import relabel_after_move
from persona.registry.results import SyncResult
from persona.registry.tracking import client
from persona.registry.versions import CHALLENGER, CHAMPION, clear_challenger, version_by_alias
from persona.settings import Settings
from persona.store import events
from persona.store.engine import utcnow

log = logging.getLogger(__name__)

EXTERNAL = "external"
REASON = "champion alias moved outside the platform"


def sync_champion(settings: Settings, engine: Engine) -> SyncResult:
    """Record and govern a move of ``champion`` made outside the platform, if any.

    Idempotent: once recorded, the same alias position is no move.

    Args:
        settings: Registry, gate and alert settings.
        engine: The survey store (audit trail, gate data).

    Returns:
        What was found and done; ``moved`` is False when the alias and the audit trail
        agree (or nothing was recorded yet: no history to compare with).

    Raises:
        RegistryError: The registry cannot be read. StoreError: the store cannot be written.
    """
    mlc = client(settings)
    name = settings.model_name
    with events.champion_lock(engine) as conn:
        current = version_by_alias(mlc, name, CHAMPION)
        recorded = events.last_champion(conn, name)
        champion = None if current is None else str(current.version)
        if champion is None or recorded is None or recorded == champion:
            return SyncResult(champion=champion)
        version = champion
        move = events.ModelEvent(name, "promote", recorded, version, REASON, EXTERNAL)
        event_id = events.insert_event(conn, move)
    log.warning("champion of %s moved outside the platform: v%s -> v%s", name, recorded, version)
    stamp = {"at": utcnow().isoformat(), "actor": EXTERNAL, "reason": REASON, "from": recorded}
    tag_move(mlc, name, "promote", recorded, version, stamp)
    challenger = version_by_alias(mlc, name, CHALLENGER)
    cleared = challenger is not None and str(challenger.version) == version
    if cleared:
        cleared = clear_challenger(mlc, name)
    gates, gates_error = None, None
    try:
        gates = gates_for(settings, engine, recorded, version)
    except PersonaError as exc:
        gates_error = str(exc)
    out = SyncResult(True, version, recorded, event_id, gates, gates_error, cleared)
    verdict = {"passed": None if gates is None else gates.passed}
    mlc.set_model_version_tag(
        name, version, "external_gates", json.dumps({**verdict, "error": gates_error})
    )
    if verdict["passed"] is not True:
        out = replace(out, alerts=tuple(_alert(settings, out)))
    # Last: the move is recorded, so a failure here must not lose the verdict or the alert.
    return replace(out, relabelled=relabel_after_move(settings, engine, recorded, version))


def _alert(settings: Settings, out: SyncResult) -> list[alerts.AlertDelivery]:
    version, previous = out.champion, out.previous
    if out.gates is not None:
        failed = [c.detail for c in out.gates.checks if not (c.passed or c.waived)]
        text = "promotion gates failed after the fact: " + "; ".join(failed)
    else:
        text = f"promotion gates could not be evaluated: {out.gates_error}"
    title = f"PersonaOps: v{version} made champion outside the platform"
    log.warning("ALERT %s: %s", title, text)
    fields = {
        "model": settings.model_name,
        "champion": version,
        "previous": previous,
        "actor": EXTERNAL,
        "event_id": out.event_id,
        "rollback": "persona model rollback",
    }
    return alerts.send_alert(settings, title, text, fields)
