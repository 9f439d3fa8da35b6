"""A segment beside a persona: its centre, the rows nearer it, the `near` test and reason."""

from __future__ import annotations

import numpy as np

from persona.monitoring import decide
from persona.monitoring.fit import near_test, nearer_to, segment_centre
from persona.monitoring.results import Segment
from persona.settings import PolicySettings
from tests.unit.test_policy import _result, _t

CENTROIDS = {"a": np.zeros(10), "b": np.full(10, 10.0)}


def _side(rows: np.ndarray) -> tuple[int, np.ndarray]:
    return len(rows), rows.sum(axis=0)


def test_a_cluster_beside_a_persona_has_a_centre_a_halo_around_it_has_none() -> None:
    rng = np.random.default_rng(3)
    direction = np.eye(10)[0]
    cluster = 12.0 * direction + rng.normal(0.0, 1.0, (30, 10))
    found = segment_centre(
        {"a": _side(cluster), "b": (0, np.zeros(10))},
        {"a": float(np.sum(cluster**2)), "b": 0.0},
        CENTROIDS,
    )
    assert found is not None and found[0] == "a"
    assert np.allclose(found[1], cluster.mean(axis=0))
    # A wider persona: far rows on every side, their mean falls back near its centroid.
    halo = rng.normal(0.0, 1.0, (30, 10))
    halo = 11.0 * halo / np.linalg.norm(halo, axis=1, keepdims=True)
    assert segment_centre({"a": _side(halo)}, {"a": float(np.sum(halo**2))}, CENTROIDS) is None
    # Fewer than MIN_SEGMENT_ROWS far rows: no centre.
    few = cluster[:4]
    assert segment_centre({"a": _side(few)}, {"a": float(np.sum(few**2))}, CENTROIDS) is None


def test_rows_nearer_the_centre_than_to_their_persona_and_the_test() -> None:
    x = np.array([[1.0] + [0.0] * 9, [7.0] + [0.0] * 9, [5.9] + [0.0] * 9])
    near = nearer_to(x, np.array([12.0] + [0.0] * 9), np.linalg.norm(x, axis=1))
    assert near.tolist() == [False, True, False]
    test = near_test("a", 60, 500, 5, 1500)
    assert test.kind == "near" and test.persona == "a" and test.pvalue < 1e-20
    assert abs(test.effect - (60 / 500 - 5 / 1500)) < 1e-12
    assert near_test("a", 0, 500, 5, 1500).pvalue == 1.0


def test_the_near_test_names_the_segment_first_and_not_the_persona() -> None:
    segment = Segment(11, 0.022, "a", 11, (("x3", 3.3), ("x2", -2.1)))
    decision = decide(
        _result(tests=[_t("near", 0.10, 1e-25), _t("unassigned", 0.02, 1e-8, None)],
                segment=segment),
        PolicySettings(),
    )  # fmt: skip
    assert decision.verdict == "retrain"
    assert decision.reasons[0] == (
        "new segment? 10.0% more rows than in the reference lie beside persona a, nearer the "
        "11 rows beyond every persona than to it (Fisher p=1e-25), nearest persona a (x3 +3.3, "
        "x2 -2.1 std from it)"
    )
    assert decision.reasons[1].startswith("unassigned rate")
    # Below the minimum effect (UNASSIGNED_MIN_EFFECT) it does not fire.
    small = decide(_result(tests=[_t("near", 0.005, 1e-25)], segment=segment), PolicySettings())
    assert small.verdict == "no_drift"
