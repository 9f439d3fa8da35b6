"""Candidate facts, same-fit and the pending review's schedule (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from persona.model import PersonaModel, with_names
from persona.months import Month
from persona.registry.reviews import PENDING, REJECTED, new_review, seen_again
from persona.training.profile import candidate_facts, same_fit

CENTRES = np.array([[0.0] * 10, [10.0] * 10, [0.0] * 9 + [20.0]])
MODEL = PersonaModel(("a", "b", "candidate-1"), ("A", "B", "Candidate 1"), CENTRES, np.full(3, 5.0))


def test_facts_count_the_month_and_name_the_answers_that_differ() -> None:
    month = np.vstack([np.zeros((6, 10)), np.full((2, 10), 10.0), [[0.0] * 9 + [20.0]] * 2])
    (fact,) = candidate_facts(MODEL, month, ["candidate-1"])
    assert (fact["rows"], fact["share"]) == (2, 0.2)
    assert (fact["nearest_persona"], fact["distance"]) == ("a", 20.0)
    assert fact["answers"][0] == {"feature": "x10", "candidate": 20.0, "nearest": 0.0}


def test_same_fit_tolerates_a_small_move_only() -> None:
    (fact,) = candidate_facts(MODEL, np.zeros((1, 10)), ["candidate-1"])
    moved = {**fact, "centroid": [*fact["centroid"][:9], 23.0]}
    ids = MODEL.persona_ids
    assert same_fit(ids, [moved], ids, [fact])
    assert not same_fit(ids, [{**fact, "centroid": [0.0] * 10}], ids, [fact])
    assert not same_fit([*ids, "candidate-2"], [moved], ids, [fact])


def test_pending_review_reminds_on_schedule_and_a_rejected_one_never() -> None:
    fact = {"persona_id": "candidate-1", "rows": 10, "share": 0.1, "centroid": [0.0] * 10}
    review = new_review(Month("2025-03"), [fact], "p.png")
    april, remind = seen_again(review, Month("2025-04"), [{**fact, "rows": 12}], 2)
    assert not remind and april["months_seen"] == ["2025-03", "2025-04"]
    assert april["candidates"][0]["rows"] == 12
    may, remind = seen_again(april, Month("2025-05"), [fact], 2)
    assert remind and may["last_alert_month"] == "2025-05" and may["status"] == PENDING
    again, remind = seen_again(may, Month("2025-05"), [fact], 2)  # a replay of May
    assert not remind and again["months_seen"] == may["months_seen"]
    never = {**review, "status": REJECTED}
    for month in ("2025-04", "2025-05", "2025-06"):
        never, remind = seen_again(never, Month(month), [fact], 1)
        assert not remind
    assert seen_again(review, Month("2025-09"), [fact], 0)[1] is False


def test_names_given_apply_to_the_loaded_model() -> None:
    named = with_names(MODEL, {"candidate-1": "Thrifty Tina", "unknown": "x"})
    assert named.persona_names == ("A", "B", "Thrifty Tina")
    assert named.predict(CENTRES[2:]).persona_name.tolist() == ["Thrifty Tina"]
    assert with_names(MODEL, {}) is MODEL


def test_the_review_list_reads_for_a_person(capsys: pytest.CaptureFixture[str]) -> None:
    from persona.cli.review import _render_reviews

    fact = {
        "persona_id": "candidate-1", "rows": 49, "share": 0.1225, "nearest_persona": "a",
        "distance": 16.8, "answers": [{"feature": "x2", "candidate": 0.1, "nearest": 9.0}],
    }  # fmt: skip
    review = {
        "version": "2", "status": "pending", "training_months": "2025-03,2025-04,2025-05",
        "trained_from": "1", "gates_passed": True, "months_count": 3, "first_month": "2025-03",
        "last_month": "2025-05", "candidates": [fact], "picture": "file:///m/persona_profile.png",
    }  # fmt: skip
    _render_reviews({"model": "m", "reviews": [review]})
    err = " ".join(capsys.readouterr().err.split())
    assert "v2 pending: trained on 2025-03,2025-04,2025-05 from v1; seen in 3 months" in err
    assert "candidate-1: 49 respondents this month (12.2% of the month), nearest a at 16.8" in err
    assert "answers that differ most: x2 0.1 vs 9" in err and "persona_profile.png" in err
    assert 'persona review approve 2 --name candidate-1="<name>"' in err
    _render_reviews({"model": "m", "reviews": [{**review, "candidates": []}]})  # retired only
    err = " ".join(capsys.readouterr().err.split())
    assert "approve: persona review approve 2 reject:" in err and "--name" not in err
    _render_reviews({"model": "m", "reviews": []})
    assert "nothing waits for review (m)" in capsys.readouterr().err
