"""Retraining: label stability through K-Means permutations, candidates, retirement, errors."""

from __future__ import annotations

import numpy as np
import pytest

from persona.catalog import load_catalog
from persona.errors import ModelError
from persona.features import FEATURE_NAMES
from persona.model import PersonaModel, calibrate_radii, from_catalog
from persona.settings import TrainingSettings
from persona.synth import generate_month
from persona.training import KFit, align, label_stability, select_k, train
from tests.conftest import CATALOG

PARAMS = TrainingSettings(k_min=2, k_max=6, kmeans_n_init=2, random_seed=7)


@pytest.fixture(scope="module")
def catalog():  # type: ignore[no-untyped-def]
    return load_catalog(CATALOG)


@pytest.fixture(scope="module")
def champion(catalog) -> PersonaModel:  # type: ignore[no-untyped-def]
    x = _month(catalog, "2025-01", "stable")[0]
    return from_catalog(catalog, calibrate_radii(from_catalog(catalog), x, 0.999, 1.25))


def _month(catalog, month: str, scenario: str, n: int = 900, seed: int = 42):  # type: ignore[no-untyped-def]
    survey, truth = generate_month(catalog, month, n, scenario, seed=seed)
    return survey.loc[:, list(FEATURE_NAMES)].to_numpy(np.float64), truth["persona_id"].to_numpy()


def test_retrain_on_stable_month_keeps_labels(catalog, champion) -> None:  # type: ignore[no-untyped-def]
    x, truth = _month(catalog, "2025-02", "stable")
    result = train(x, champion, PARAMS)
    assert result.k == 3
    assert set(result.model.persona_ids) == set(champion.persona_ids)
    assert result.model.persona_names == champion.persona_names
    assert result.alignment.candidates == () and result.alignment.retired == ()
    assert label_stability(champion, result.model, x) >= 0.99
    assert np.mean(result.model.predict(x).persona_id == truth) >= 0.99
    assert [fit.k for fit in result.sweep] == list(range(2, 7))
    assert sum(fit.selected for fit in result.sweep) == 1
    for fit in result.sweep:
        for metric in ("silhouette", "calinski_harabasz", "davies_bouldin"):
            assert np.isfinite(fit.score(metric))
        assert fit.silhouette_inertia_ratio == pytest.approx(fit.silhouette * 1000 / fit.inertia)
    assert np.isfinite(result.model.radii).all()


def test_alignment_makes_kmeans_permutation_invisible(catalog, champion) -> None:  # type: ignore[no-untyped-def]
    x, _ = _month(catalog, "2025-03", "stable")
    shuffled = PersonaModel(
        champion.persona_ids[::-1],
        champion.persona_names[::-1],
        champion.centroids[::-1] + 0.3,
        champion.radii[::-1],
    )
    a = train(x, champion, PARAMS)
    b = train(x, shuffled, PARAMS)
    assert (a.model.predict(x).persona_id == b.model.predict(x).persona_id).all()
    # Cluster index order from K-Means is permuted on purpose: ids follow the centroids.
    ids, _, report = align(champion.centroids[[2, 0, 1]], champion, 8.0)
    assert ids == [champion.persona_ids[i] for i in (2, 0, 1)]
    assert len(report.matched) == 3


def test_new_segment_month_yields_candidate(catalog, champion) -> None:  # type: ignore[no-untyped-def]
    x, truth = _month(catalog, "2025-04", "new_segment")
    result = train(x, champion, PARAMS)
    assert result.k == 4
    assert result.model.persona_ids[:3] == champion.persona_ids
    assert result.model.persona_ids[3] == "candidate-1"
    assert result.model.persona_names[3] == "Candidate 1"
    [candidate] = result.alignment.candidates
    assert candidate.distance > PARAMS.align_max_distance
    pred = result.model.predict(x).persona_id
    new = truth == "new-segment"
    assert np.mean(pred[new] == "candidate-1") >= 0.99
    assert np.mean(pred[~new] == truth[~new]) >= 0.99


def test_candidate_numbers_skip_existing_ones(champion) -> None:  # type: ignore[no-untyped-def]
    current = PersonaModel(
        (*champion.persona_ids, "candidate-1"),
        (*champion.persona_names, "Candidate 1"),
        np.vstack([champion.centroids, np.full(10, 50.0)]),
        np.full(4, np.inf),
    )
    new = np.vstack([champion.centroids, np.full(10, 50.0), np.full(10, -60.0)])
    ids, names, report = align(new, current, 8.0)
    assert ids[3] == "candidate-1" and ids[4] == "candidate-2" and names[4] == "Candidate 2"
    assert [c.persona_id for c in report.candidates] == ["candidate-2"]


def test_missing_persona_is_retired_candidate(catalog, champion) -> None:  # type: ignore[no-untyped-def]
    x, truth = _month(catalog, "2025-05", "stable")
    keep = truth != "budget-bob"
    params = TrainingSettings(k_min=2, k_max=2, kmeans_n_init=2, random_seed=7)
    result = train(x[keep], champion, params)
    assert result.model.persona_ids == ("sustainable-steve", "eco-conscious-haley")
    assert [r.persona_id for r in result.alignment.retired] == ["budget-bob"]


def test_far_moved_persona_is_not_matched(champion) -> None:  # type: ignore[no-untyped-def]
    moved = champion.centroids.copy()
    moved[0] += 20.0
    ids, _, report = align(moved, champion, 8.0)
    assert ids[0] == "candidate-1"
    assert [r.persona_id for r in report.retired] == ["sustainable-steve"]


def test_deterministic(catalog, champion) -> None:  # type: ignore[no-untyped-def]
    x, _ = _month(catalog, "2025-06", "spread")
    a, b = train(x, champion, PARAMS), train(x, champion, PARAMS)
    assert a.k == b.k and a.model.persona_ids == b.model.persona_ids
    np.testing.assert_array_equal(a.model.centroids, b.model.centroids)
    np.testing.assert_array_equal(a.model.radii, b.model.radii)
    assert a.summary() == b.summary()


def test_silhouette_is_sampled_above_the_limit(catalog, champion) -> None:  # type: ignore[no-untyped-def]
    x, _ = _month(catalog, "2025-07", "stable", n=1200)
    params = TrainingSettings(k_min=3, k_max=3, silhouette_sample_rows=300, random_seed=1)
    sampled = train(x, champion, params).sweep[0].silhouette
    full = train(x, champion, TrainingSettings(k_min=3, k_max=3, random_seed=1)).sweep[0].silhouette
    assert sampled != full and sampled == pytest.approx(full, abs=0.05)


def _fit(k: int, silhouette: float = 0.0, davies_bouldin: float = 0.0) -> KFit:
    return KFit(k, False, 1.0, 1, silhouette, 0.0, davies_bouldin, 0.0, np.zeros((k, 10)))


def test_select_k_rule() -> None:
    sweep = [_fit(2, silhouette=0.60), _fit(3, silhouette=0.57), _fit(4, silhouette=0.4)]
    assert select_k(sweep, "silhouette", 0.10, current_k=3) == 3  # near tie: keep current k
    assert select_k(sweep, "silhouette", 0.01, current_k=3) == 2  # clear winner
    assert select_k(sweep, "silhouette", 0.10, current_k=5) == 2  # best wins
    db = [_fit(2, davies_bouldin=0.9), _fit(3, davies_bouldin=0.5)]
    assert select_k(db, "davies_bouldin", 0.0, current_k=2) == 3  # lower is better
    with pytest.raises(ModelError, match="unknown selection metric"):
        select_k(sweep, "accuracy", 0.1, 3)
    with pytest.raises(ModelError, match="finite"):
        select_k([_fit(2, silhouette=float("nan"))], "silhouette", 0.1, 2)


def test_bad_inputs(champion) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ModelError, match="empty"):
        train(np.empty((0, 10)), champion, PARAMS)
    with pytest.raises(ModelError, match="fewer than k=2"):
        train(np.zeros((1, 10)), champion, PARAMS)
    x = np.random.default_rng(0).normal(size=(50, 10))
    x[7, 3] = np.nan
    with pytest.raises(ModelError, match=r"NaN/inf.*row 7 column x4"):
        train(x, champion, PARAMS)
    with pytest.raises(ModelError, match="shape"):
        train(np.zeros((5, 3)), champion, PARAMS)
    with pytest.raises(ModelError, match="bad k range"):
        train(np.zeros((50, 10)), champion, TrainingSettings.model_construct(k_min=5, k_max=3))


def _window(catalog, seed: int, share: float, n: int = 500):  # type: ignore[no-untyped-def]
    """Two stable months and one with a new segment (the retrain window of its first month)."""
    parts = [generate_month(catalog, m, n, "stable", seed=seed) for m in ("2025-01", "2025-02")]
    parts.append(generate_month(catalog, "2025-03", n, "new_segment", seed=seed, new_share=share))
    x = np.vstack([p[0].loc[:, list(FEATURE_NAMES)].to_numpy(np.float64) for p in parts])
    truth = np.concatenate([p[1]["persona_id"].to_numpy() for p in parts])
    return x, truth


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_segment_in_its_first_month_becomes_a_candidate(catalog, champion, seed) -> None:  # type: ignore[no-untyped-def]
    x, truth = _window(catalog, seed, 0.15)
    params = TrainingSettings(k_min=2, k_max=10, kmeans_n_init=3, random_seed=42)
    result = train(x, champion, params)
    assert result.model.persona_ids[:3] == champion.persona_ids
    assert [c.persona_id for c in result.alignment.candidates] == ["candidate-1"]
    [candidate] = result.alignment.candidates
    assert 12.0 <= candidate.distance <= 21.0 and candidate.rows >= 40
    pred = result.model.predict(x).persona_id
    new = truth == "new-segment"
    assert np.mean(np.isin(pred[new], champion.persona_ids)) < 0.05
    assert np.mean(pred[~new] == truth[~new]) >= 0.99


def test_no_drift_retrain_keeps_every_label_and_splits_nothing(catalog, champion) -> None:  # type: ignore[no-untyped-def]
    for seed in (11, 12, 13):
        x = _window(catalog, seed, 0.001)[0][:1000]  # the two stable months
        result = train(x, champion, TrainingSettings(random_seed=42))
        assert result.k == 3 and result.model.persona_ids == champion.persona_ids
        assert result.model.persona_names == champion.persona_names
        assert result.model.training["splits"] == []
        assert label_stability(champion, result.model, x) >= 0.99


def test_radius_growth_is_bounded_and_reported(catalog, champion) -> None:  # type: ignore[no-untyped-def]
    x, _ = _month(catalog, "2025-06", "spread", n=1500)
    params = TrainingSettings(k_min=3, k_max=3, random_seed=42, radius_max_growth=1.1)
    result = train(x, champion, params)  # no reference rows: the plain bound
    grown = {g.persona_id: g for g in result.alignment.radius_grown}
    assert set(grown) == set(champion.persona_ids)
    for index, pid in enumerate(result.model.persona_ids):
        assert result.model.radii[index] == pytest.approx(champion.radii[index] * 1.1)
        assert grown[pid].calibrated > grown[pid].bound
    # With the champion's own rows, a persona that spread as a whole may widen with it.
    reference = _month(catalog, "2025-01", "stable")[0]
    spread = train(
        x, champion, TrainingSettings(k_min=3, k_max=3, random_seed=42), reference=reference
    )
    assert spread.alignment.radius_grown == ()
    assert (spread.model.radii > 1.3 * champion.radii).all()


def test_given_names_survive_alignment(champion) -> None:  # type: ignore[no-untyped-def]
    current = PersonaModel(
        (*champion.persona_ids, "candidate-1"),
        (*champion.persona_names, "Candidate 1"),
        np.vstack([champion.centroids, np.full(10, 50.0)]),
        np.full(4, np.inf),
    )
    ids, names, report = align(current.centroids, current, 8.0, {"candidate-1": "Thrifty Tina"})
    assert ids[3] == "candidate-1" and names[3] == "Thrifty Tina"
    assert report.matched[3].persona_name == "Thrifty Tina"
