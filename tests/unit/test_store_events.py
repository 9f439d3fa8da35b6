"""store.events on SQLite: ModelEvent in, RecordedEvent out, the champion history replayed."""

from __future__ import annotations

from pathlib import Path

from persona.registry import champion_history
from persona.store import events
from persona.store.engine import open_store


def test_events_round_trip_in_order_and_replay_into_the_champion_stack(tmp_path: Path) -> None:
    engine = open_store(f"sqlite:///{tmp_path}/store.db")
    moves = [
        events.ModelEvent("m", "bootstrap", None, "1", "first", "system"),
        events.ModelEvent("m", "promote", "1", "2", "better", "me"),
        events.ModelEvent("other", "bootstrap", None, "1", "first", "system"),
        events.ModelEvent("m", "rollback", "2", "1", "worse", "me"),
    ]
    ids = [events.record_event(engine, move) for move in moves]
    assert ids == sorted(ids)
    rows = events.list_events(engine, "m")
    assert [r.event_id for r in rows] == [ids[0], ids[1], ids[3]]
    assert [(r.event, r.from_version, r.to_version, r.actor) for r in rows] == [
        ("bootstrap", None, "1", "system"),
        ("promote", "1", "2", "me"),
        ("rollback", "2", "1", "me"),
    ]
    assert set(rows[0].to_dict()) == {
        "event_id", "model_name", "event", "from_version", "to_version", "reason", "actor",
        "created_at",
    }  # fmt: skip
    assert champion_history(rows) == ["1"]
    assert champion_history(rows[:2]) == ["1", "2"]
    assert len(events.list_events(engine)) == 4
