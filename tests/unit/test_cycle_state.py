"""The persisted state of a month's cycle, month resolution and the promotion rules."""

from __future__ import annotations

import pytest

from persona.cycle_results import Challenger
from persona.cycle_state import CycleState, final_action, parse_state
from persona.flows import promotion_refusal
from persona.months import MonthError, resolve_month


def test_state_round_trip_through_every_stage() -> None:
    fresh = parse_state(None, "retrain")
    assert fresh == CycleState("retrain") and not fresh.alerted and not fresh.promote_decided
    assert fresh.encode() == "pending:retrain"
    alerted = fresh.with_alerted()
    assert alerted.encode() == "pending:retrain:alerted"
    decided = alerted.with_promotion(True)
    assert decided.encode() == "pending:retrain:alerted:promoted"
    assert parse_state(decided.encode(), "retrain") == decided
    assert decided.promoted and decided.promote_decided and not decided.done
    done = decided.finished()
    assert done.encode() == "retrained_promoted" and done.done
    assert parse_state("retrained_promoted", "retrain").promoted
    assert not parse_state("retrained_challenger", "retrain").promoted
    kept = parse_state("pending:retrain:alerted:kept", "retrain")
    assert kept.promote_decided and not kept.promoted


def test_verdicts_without_alert_or_promotion() -> None:
    quiet = parse_state(None, "no_drift")
    assert quiet.alerted and quiet.promote_decided  # nothing due
    assert quiet.finished().encode() == "none"
    assert parse_state("pending:watch", "watch").alerted is False
    assert final_action("watch", False) == "alerted"
    assert final_action("insufficient_data", False) == "none"
    assert final_action("retrain", False) == "retrained_challenger"
    assert parse_state("something odd", "watch") == CycleState("watch")


def test_resolve_month() -> None:
    assert resolve_month("2025-03") == "2025-03"
    assert resolve_month("", "2026-01-02T06:00:00") == "2025-12"
    assert resolve_month(None, "2025-04-02 06:00:00+00:00") == "2025-03"
    assert len(resolve_month("")) == 7
    with pytest.raises(MonthError, match="2025-3"):
        resolve_month("2025-3")
    with pytest.raises(MonthError, match="run date"):
        resolve_month("", "yesterday")


def _challenger(version: str = "3", passed: bool = True, review: bool = False) -> Challenger:
    return Challenger(version, gates_passed=passed, needs_review=review)


def test_promotion_rules() -> None:
    assert promotion_refusal(_challenger(), "2", True) is None
    assert "never move back" in str(promotion_refusal(_challenger("2"), "3", True))
    assert "gates" in str(promotion_refusal(_challenger(passed=False), "2", True))
    assert "review" in str(promotion_refusal(_challenger(review=True), "2", True))
    assert "AUTO_PROMOTE" in str(promotion_refusal(_challenger(), "2", False))
