"""The persisted state of a month's cycle, month resolution and the promotion rules."""

from __future__ import annotations

import pytest

from persona.cycle_results import Challenger
from persona.cycle_state import (
    CycleState,
    CycleStateError,
    FinalAction,
    PinnedRun,
    Promotion,
    Verdict,
    final_action,
    parse_state,
)
from persona.errors import PersonaError
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


def test_state_is_a_closed_set_and_unknown_text_is_an_error() -> None:
    assert parse_state("", "watch") == CycleState(Verdict.WATCH)
    assert parse_state("stale:pending:retrain:alerted", "retrain") == CycleState(Verdict.RETRAIN)
    state = parse_state("pending:retrain:alerted:kept", "retrain")
    assert state.verdict is Verdict.RETRAIN and state.promotion is Promotion.KEPT
    assert parse_state("none", "no_drift").final is FinalAction.NONE
    assert state.encode() == "pending:retrain:alerted:kept"  # members write their plain text
    for text, words in [
        ("something odd", "neither a final action"),
        ("pending:", "neither a final action"),
        ("pending:retrian", "'retrian' is not a Verdict"),
        ("pending:retrain:alerted:promotd", "'promotd' is not a Promotion"),
        ("retrained", "neither a final action"),
    ]:
        with pytest.raises(CycleStateError, match=words) as caught:
            parse_state(text, "retrain")
        assert isinstance(caught.value, PersonaError) and text in str(caught.value)
    with pytest.raises(CycleStateError, match="'drifted' is not a Verdict"):
        parse_state(None, "drifted")
    with pytest.raises(CycleStateError, match=r"^monitoring run 7: cycle state 'odd'"):
        _ = PinnedRun(7, "watch", action_taken="odd").state


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
