"""Governance of discovery: absorbed rows, review reasons, no automatic promotion, alert text."""

from __future__ import annotations

import numpy as np

from persona.alerts import review_text
from persona.cycle_results import Challenger
from persona.flows import promotion_refusal
from persona.model import PersonaModel
from persona.registry.gates import absorbed_rows, review_reasons
from persona.training import Alignment, CandidatePersona, RadiusGrowth, RetiredPersona

CENTRES = np.array([[0.0] * 10, [30.0] * 10])


def _model(ids: tuple[str, ...], centres: np.ndarray, radii: list[float]) -> PersonaModel:
    return PersonaModel(ids, tuple(i.title() for i in ids), centres, np.array(radii))


def test_absorbed_rows_count_only_what_an_old_persona_takes() -> None:
    champion = _model(("a", "b"), CENTRES, [5.0, 5.0])
    month = np.vstack([np.zeros((8, 10)), np.full((2, 10), 3.0), np.full((2, 10), 12.0)])
    # rows at 3.0 (distance 9.5) are unassigned by the champion
    wider = _model(("a", "b"), CENTRES, [10.0, 5.0])
    out = absorbed_rows(champion, wider, month)
    assert (out.rows, out.unassigned, out.month_rows) == (2, 4, 12)
    assert out.by_persona == {"a": 2} and out.share == 2 / 12
    # a challenger that gives them to a candidate absorbs nothing
    with_candidate = _model(
        ("a", "b", "candidate-1"), np.vstack([CENTRES, np.full((1, 10), 3.0)]), [5.0, 5.0, 5.0]
    )
    assert absorbed_rows(champion, with_candidate, month).rows == 0


def test_review_reasons_and_auto_promotion_rule() -> None:
    alignment = Alignment(
        candidates=(CandidatePersona("candidate-1", "Candidate 1", 3, "budget-bob", 16.6, 180),),
        retired=(RetiredPersona("eco-conscious-haley", "Eco-conscious Haley", 30.0),),
        radius_grown=(RadiusGrowth("budget-bob", 13.0, 25.0, 19.5, 1.0),),
    )
    reasons = review_reasons(alignment)
    assert reasons == [
        "candidate candidate-1: 180 rows, nearest persona budget-bob at distance 16.6",
        "persona eco-conscious-haley retired",
        "persona budget-bob radius grew to 25.0 beyond the bound 19.5 (capped)",
    ]
    assert review_reasons(Alignment()) == []

    def refusal(gates: bool, review: bool, auto: bool) -> str | None:
        challenger = Challenger("4", gates_passed=gates, needs_review=review)
        return promotion_refusal(challenger, "3", auto)

    assert refusal(True, False, True) is None
    assert "needs review" in str(refusal(True, True, True))  # never automatic
    assert refusal(True, False, False) is not None
    assert refusal(False, False, True) is not None


def test_review_alert_names_the_candidate_and_the_commands() -> None:
    candidate = {
        "persona_id": "candidate-1", "rows": 60, "share": 0.15, "nearest_persona": "budget-bob",
        "distance": 16.6, "answers": [{"feature": "x2", "candidate": 0.1, "nearest": 9.0}],
    }  # fmt: skip
    review = {"months_seen": ["2025-03"], "first_month": "2025-03", "picture": "runs/p.png"}
    trained = {
        "version": "4",
        "alert": "new",
        "review_reasons": ["candidate candidate-1: 180 rows, nearest persona budget-bob"],
        "review": {**review, "candidates": [candidate]},
    }
    title, text = review_text("2025-03", trained)
    assert title == "PersonaOps: challenger v4 for 2025-03 needs review"
    assert "candidate-1: 60 respondents this month (15.0% of the month), nearest persona " in text
    assert "budget-bob at distance 16.6; answers that differ most: x2 0.1 vs 9" in text
    assert "Persona profiles: runs/p.png" in text
    assert 'persona review approve 4 --name candidate-1="<name>"' in text
    assert 'persona review reject 4 --reason "<why>"' in text
    later = {**review, "months_seen": ["2025-03", "2025-04", "2025-05"], "candidates": [candidate]}
    reminder, _ = review_text("2025-05", {**trained, "alert": "reminder", "review": later})
    assert reminder.endswith("reminder, v4 still waits for review (since 2025-03, seen 3 months)")
    retired = {**trained, "review_reasons": ["persona haley retired"], "review": review}
    _, text = review_text("2025-03", retired)  # no candidate: nothing to name
    assert "persona review approve 4; or: persona review reject 4" in text and "--name" not in text


def test_a_persona_that_spread_as_a_whole_is_not_an_absorption() -> None:
    rng = np.random.default_rng(0)
    champion = _model(("a", "b"), CENTRES, [8.0, 8.0])
    reference = np.vstack([rng.normal(0, 1.5, (200, 10)), rng.normal(30, 1.5, (200, 10))])
    spread = np.vstack([rng.normal(0, 3.0, (200, 10)), rng.normal(30, 1.5, (200, 10))])
    wide = _model(("a", "b"), CENTRES, [16.0, 8.0])
    assert absorbed_rows(champion, wide, spread).rows > 20  # without the champion's rows
    assert absorbed_rows(champion, wide, spread, reference).rows <= 2
