"""Promotion and rollback: move the `champion` alias, record it in model_events and tags."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mlflow import MlflowClient
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from persona.errors import ModelError, RegistryError, StoreError
from persona.months import Month
from persona.registry.gates import GateInputs, GateResult, evaluate_gates
from persona.registry.lifecycle import load_features
from persona.registry.naming import name_version
from persona.registry.relabel import relabel_after_move
from persona.registry.results import Approval, PromotionResult, RollbackResult
from persona.registry.reviews import APPROVED, PENDING, decide, read_review
from persona.registry.tracking import client, configure
from persona.registry.versions import (
    CHALLENGER,
    CHAMPION,
    clear_challenger,
    get_version,
    load_model_for_serving,
    version_by_alias,
)
from persona.settings import Settings
from persona.store import events
from persona.store.engine import utcnow


def gates_for(settings: Settings, engine: Engine, champion: str, version: str) -> GateResult:
    """Evaluate the gates of `version` against `champion` on data from the survey store.

    Current data = the version's training months; champion data = the champion's months.

    Raises:
        NotIngestedError: A version's training months are not in the store.
        RegistryError: A version has no training months, or their rows are bad.
    """
    name = settings.model_name
    old = load_model_for_serving(settings, f"models:/{name}/{champion}")
    new = load_model_for_serving(settings, f"models:/{name}/{version}")

    def months(tags: dict[str, str], which: str) -> list[Month]:
        found = [Month(m) for m in tags.get("training_months", "").split(",") if m]
        if not found:
            raise RegistryError(f"{which} version has no training_months tag; use --force")
        return found

    purpose = "the promotion gates (--force skips them)"
    try:
        trained_on = months(new.tags, f"version {version}")
        current = load_features(engine, trained_on, purpose)
        month = load_features(engine, [max(trained_on)], purpose)
        reference = load_features(engine, months(old.tags, f"champion {champion}"), purpose)
    except ModelError as exc:
        raise RegistryError(f"cannot evaluate the gates: {exc}; use --force to skip") from None
    drift = new.tags.get("drift_demanded") == "true"
    inputs = GateInputs(old.model, new.model, current, reference, drift, month)
    return evaluate_gates(inputs, settings.gates, settings.training)


def _move_champion(
    settings: Settings,
    engine: Engine,
    event: str,
    previous: str | None,
    target: str,
    reason: str,
    actor: str,
) -> int:
    mlc = client(settings)
    name = settings.model_name
    stamp = {"at": utcnow().isoformat(), "actor": actor, "reason": reason, "from": previous}
    # Alias and audit row move together under the champion lock: a concurrent check for
    # moves made outside the platform (governance.sync_champion) never sees one without
    # the other.
    try:
        with events.champion_lock(engine) as conn:
            mlc.set_registered_model_alias(name, CHAMPION, target)
            try:
                move = events.ModelEvent(name, event, previous, target, reason, actor)
                event_id = events.insert_event(conn, move)
            except Exception:
                if previous is not None:
                    mlc.set_registered_model_alias(name, CHAMPION, previous)
                raise
    except SQLAlchemyError as exc:
        if previous is not None:
            mlc.set_registered_model_alias(name, CHAMPION, previous)
        raise StoreError(f"cannot record the {event} of {name} v{target}: {exc}") from exc
    tag_move(mlc, name, event, previous, target, stamp)
    return event_id


def tag_move(
    mlc: MlflowClient,
    name: str,
    event: str,
    previous: str | None,
    target: str,
    stamp: dict[str, Any],
) -> None:
    """Stamp a champion move on its versions (promoted / restored_by_rollback, replaced_by)."""
    key = "restored_by_rollback" if event == "rollback" else "promoted"
    mlc.set_model_version_tag(name, target, key, json.dumps(stamp))
    if previous is not None:
        mlc.set_model_version_tag(
            name, previous, "replaced_by", json.dumps({**stamp, "to": target})
        )


def promote(
    settings: Settings,
    engine: Engine,
    version: str | None = None,
    reason: str = "",
    actor: str = "cli",
    force: bool = False,
) -> PromotionResult:
    """Make a version champion when the gates pass (or `force`).

    A gate refusal is a verdict, not an error: ``promoted`` false, with the gates.

    Args:
        settings: The settings.
        engine: The survey store (model_events, gate data).
        version: Version to promote (default: the current `challenger`).
        reason: Why (recorded).
        actor: Who (recorded).
        force: Skip the gates.

    Returns:
        Whether it moved, the version, the previous champion, the gates, the event.

    Raises:
        RegistryError: No challenger, unknown version, no champion.
    """
    configure(settings)
    mlc = client(settings)
    name = settings.model_name
    if version is None:
        found = version_by_alias(mlc, name, CHALLENGER)
        if found is None:
            raise RegistryError(f"model {name!r} has no challenger to promote (give --version)")
        version = str(found.version)
    target = get_version(mlc, name, str(version))
    version = str(target.version)
    current = version_by_alias(mlc, name, CHAMPION)
    previous = None if current is None else str(current.version)
    if previous == version:
        return PromotionResult(False, version, previous, f"version {version} is already champion")
    gates = None
    if previous is not None and not force:
        gates = gates_for(settings, engine, previous, version)
        if not gates.passed:
            mlc.set_model_version_tag(name, version, "gates_passed", "false")
            note = "refused by the promotion gates"
            return PromotionResult(False, version, previous, note, gates)
    event_id = _move_champion(settings, engine, "promote", previous, version, reason, actor)
    challenger = version_by_alias(mlc, name, CHALLENGER)
    if challenger is not None and str(challenger.version) == version:
        clear_challenger(mlc, name)
    if (read_review(dict(target.tags)) or {}).get("status") == PENDING:
        decide(settings, version, APPROVED, reason, actor)  # a promotion closes its review
    relabelled = relabel_after_move(settings, engine, previous, version)
    return PromotionResult(True, version, previous, None, gates, force, event_id, relabelled)


def approve(
    settings: Settings,
    engine: Engine,
    version: str,
    names: dict[str, str],
    reason: str = "",
    actor: str = "cli",
) -> Approval:
    """Approve a pending review in one step: name its personas and promote the version.

    The names are tags of the version, so the API, `/compat/labels` and the labels show
    them as soon as it is champion; the promotion passes the same gates and audit as any
    (a refusal leaves the review pending and says why).

    Args:
        settings: The settings.
        engine: The survey store.
        version: The version under review.
        names: Persona id -> display name (e.g. ``{"candidate-1": "Thrifty Tina"}``).
        reason: Why (recorded; default ``review approved``).
        actor: Who (recorded).

    Returns:
        The names given and the promotion (with the months relabelled).

    Raises:
        RegistryError: Unknown version, no pending review, a persona the version lacks.
    """
    configure(settings)
    mv = get_version(client(settings), settings.model_name, str(version))
    status = (read_review(dict(mv.tags)) or {}).get("status")
    if status != PENDING:
        raise RegistryError(f"version {version} has no pending review (review: {status})")
    named = name_version(settings, str(mv.version), names) if names else {}
    moved = promote(settings, engine, str(mv.version), reason or "review approved", actor)
    return Approval(str(mv.version), named, moved)


def champion_history(rows: Sequence[events.ModelEvent]) -> list[str]:
    """Replay model_events into the stack of champions (rollback pops)."""
    stack: list[str] = []
    for row in rows:
        if row.event == "rollback":
            if stack and stack[-1] == row.from_version:
                stack.pop()
            if not stack or stack[-1] != row.to_version:
                stack.append(row.to_version)
        else:
            stack.append(row.to_version)
    return stack


def rollback(
    settings: Settings, engine: Engine, reason: str = "", actor: str = "cli"
) -> RollbackResult:
    """Give the `champion` alias back to the previous champion (from model_events).

    Returns:
        The restored champion, the one rolled back and the event.

    Raises:
        RegistryError: No champion, or no earlier champion to return to.
    """
    configure(settings)
    mlc = client(settings)
    name = settings.model_name
    current = version_by_alias(mlc, name, CHAMPION)
    if current is None:
        raise RegistryError(f"model {name!r} has no champion to roll back")
    now = str(current.version)
    stack = champion_history(events.list_events(engine, name))
    while stack and stack[-1] == now:
        stack.pop()
    if not stack:
        raise RegistryError(f"no previous champion of {name!r} to roll back to (v{now} is first)")
    target = stack[-1]
    get_version(mlc, name, target)
    event_id = _move_champion(settings, engine, "rollback", now, target, reason, actor)
    return RollbackResult(target, now, event_id)
