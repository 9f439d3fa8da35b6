"""synth: seeded, reproducible survey months and the named drift scenarios."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from persona.catalog import Catalog, load_catalog
from persona.features import FEATURE_NAMES
from persona.synth import (
    NEW_SEGMENT_ID,
    ScenarioError,
    default_year,
    generate_month,
    new_segment_centroid,
    write_month,
)

CATALOG = Path(__file__).resolve().parents[2] / "01_model" / "personas.yaml"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(CATALOG)


def _within_std(
    survey: pd.DataFrame, truth: pd.DataFrame, persona: str, centre: np.ndarray
) -> float:
    values = survey.loc[truth["persona_id"] == persona, list(FEATURE_NAMES)].to_numpy()
    return float(np.sqrt(((values - centre) ** 2).mean()))


def test_columns_ids_and_truth_alignment(catalog: Catalog) -> None:
    survey, truth = generate_month(catalog, "2025-02", 300, seed=3)
    assert list(survey.columns) == ["respondent_id", "survey_month", *FEATURE_NAMES]
    assert list(truth.columns) == ["respondent_id", "survey_month", "persona_id", "scenario"]
    assert survey["respondent_id"].is_unique and len(survey) == 300
    assert (survey["respondent_id"] == truth["respondent_id"]).all()
    assert set(survey["survey_month"]) == {"2025-02"} and set(truth["scenario"]) == {"stable"}
    assert survey[list(FEATURE_NAMES)].dtypes.eq(np.float64).all()


def test_same_seed_month_scenario_gives_identical_frames(catalog: Catalog) -> None:
    a = generate_month(catalog, "2025-03", 200, "shift", seed=11)
    b = generate_month(catalog, "2025-03", 200, "shift", seed=11)
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])
    other_seed = generate_month(catalog, "2025-03", 200, "shift", seed=12)[0]
    other_month = generate_month(catalog, "2025-04", 200, "shift", seed=11)[0]
    assert not np.allclose(a[0]["x1"], other_seed["x1"])
    assert not np.allclose(a[0]["x1"], other_month["x1"])


def test_membership_is_random_by_default_and_exact_on_request(catalog: Catalog) -> None:
    counts = [
        generate_month(catalog, "2025-01", 500, seed=s)[1]["persona_id"].value_counts()
        for s in range(20)
    ]
    steve = [int(c["sustainable-steve"]) for c in counts]
    assert len(set(steve)) > 5 and 130 < sum(steve) / 20 < 203  # multinomial noise
    _, exact = generate_month(catalog, "2025-01", 500, seed=1, membership="exact")
    assert sorted(exact["persona_id"].value_counts().tolist()) == [166, 167, 167]


def test_stable_is_std_2_with_equal_shares(catalog: Catalog) -> None:
    survey, truth = generate_month(catalog, "2025-01", 3000, seed=1, membership="exact")
    assert truth["persona_id"].value_counts().to_dict() == {pid: 1000 for pid in catalog.ids}
    for persona in catalog.personas:
        std = _within_std(survey, truth, persona.id, np.array(persona.centroid))
        assert std == pytest.approx(2.0, rel=0.05)


def test_spread_is_std_3_1(catalog: Catalog) -> None:
    survey, truth = generate_month(catalog, "2025-03", 3000, "spread", seed=1)
    persona = catalog.personas[1]
    assert _within_std(survey, truth, persona.id, np.array(persona.centroid)) == pytest.approx(
        3.1, rel=0.05
    )


def test_shift_moves_one_persona_by_the_distance(catalog: Catalog) -> None:
    survey, truth = generate_month(
        catalog, "2025-04", 3000, "shift", seed=5, shift_persona="budget-bob", shift_distance=8.0
    )
    for persona in catalog.personas:
        mean = survey.loc[truth["persona_id"] == persona.id, list(FEATURE_NAMES)].mean().to_numpy()
        moved = float(np.linalg.norm(mean - np.array(persona.centroid)))
        if persona.id == "budget-bob":
            assert moved == pytest.approx(8.0, abs=0.4)
        else:
            assert moved < 0.4
    default = generate_month(catalog, "2025-04", 3000, "shift", seed=5)
    first = catalog.personas[0]
    mask = default[1]["persona_id"] == first.id
    mean = default[0].loc[mask, list(FEATURE_NAMES)].mean().to_numpy()
    assert np.linalg.norm(mean - np.array(first.centroid)) == pytest.approx(6.0, abs=0.4)


def test_new_segment_share_and_a_far_centroid(catalog: Catalog) -> None:
    survey, truth = generate_month(
        catalog, "2025-05", 1000, "new_segment", seed=9, new_share=0.25, membership="exact"
    )
    counts = truth["persona_id"].value_counts()
    assert counts[NEW_SEGMENT_ID] == 250
    centre = new_segment_centroid(catalog, 9)
    nearest = np.linalg.norm(catalog.centroids() - centre, axis=1).min()
    assert 12.0 <= nearest <= 20.0  # the 12-20 from the nearest persona
    for seed in range(20):
        gap = np.linalg.norm(catalog.centroids() - new_segment_centroid(catalog, seed), axis=1)
        assert 12.0 - 1e-9 <= gap.min() <= 20.0
    placed = new_segment_centroid(catalog, 3, distance=15.0)
    assert np.linalg.norm(catalog.centroids() - placed, axis=1).min() == pytest.approx(15.0)
    same_in_june = new_segment_centroid(catalog, 9)
    assert np.array_equal(centre, same_in_june)
    assert _within_std(survey, truth, NEW_SEGMENT_ID, centre) == pytest.approx(2.0, rel=0.1)


def test_mix_changes_persona_shares(catalog: Catalog) -> None:
    _, truth = generate_month(catalog, "2025-06", 1000, "mix", seed=2, membership="exact")
    assert truth["persona_id"].value_counts().to_dict() == {
        "sustainable-steve": 600,
        "eco-conscious-haley": 300,
        "budget-bob": 100,
    }
    _, custom = generate_month(
        catalog, "2025-06", 10, "mix", seed=2, shares=[0, 1, 1], membership="exact"
    )
    assert custom["persona_id"].value_counts().to_dict() == {
        "eco-conscious-haley": 5,
        "budget-bob": 5,
    }


def test_vanish_rescale_sign_flip_and_zero_fill(catalog: Catalog) -> None:
    _, truth = generate_month(catalog, "2025-07", 600, "vanish", seed=2, shift_persona="budget-bob")
    assert "budget-bob" not in set(truth["persona_id"])
    base, _ = generate_month(catalog, "2025-07", 600, "stable", seed=2)
    scaled, _ = generate_month(catalog, "2025-07", 600, "rescale", seed=2, feature="x2", factor=3)
    flipped, _ = generate_month(catalog, "2025-07", 600, "sign_flip", seed=2, feature="x4")
    assert scaled["x2"].abs().mean() > 2.5 * base["x2"].abs().mean()
    assert flipped["x4"].mean() == pytest.approx(-base["x4"].mean(), abs=0.6)
    zeroed, _ = generate_month(catalog, "2025-07", 1000, "zero_fill", seed=2, zero_share=0.2)
    rows = (zeroed[["x6", "x7", "x8", "x9", "x10"]] == 0.0).all(axis=1)
    assert 150 < rows.sum() < 250 and (zeroed.loc[rows, "x1"] != 0.0).all()
    shifted, t = generate_month(catalog, "2025-07", 3000, "shift", seed=2, shift_sigma=1.0,
                                membership="exact")  # fmt: skip
    first = catalog.personas[0]
    mean = shifted.loc[t["persona_id"] == first.id, list(FEATURE_NAMES)].mean().to_numpy()
    assert np.abs(mean - np.array(first.centroid)) == pytest.approx(np.full(10, 2.0), abs=0.3)


def test_default_year_is_the_original_study() -> None:
    plan = default_year()
    assert [(p.month, p.n, p.scenario) for p in plan] == [
        ("2025-01", 500, "stable"),
        ("2025-02", 500, "stable"),
        ("2025-03", 500, "spread"),
        ("2025-04", 500, "stable"),
        ("2025-05", 500, "stable"),
    ]


def test_write_month_files_round_trip(catalog: Catalog, tmp_path: Path) -> None:
    info = write_month(catalog, "2025-03", 120, tmp_path / "out", "spread", seed=4)
    assert {Path(p).name for p in info.files.values()} == {
        "survey_2025-03.csv",
        "survey_2025-03.parquet",
        "truth_2025-03.csv",
    }
    survey, truth = generate_month(catalog, "2025-03", 120, "spread", seed=4)
    pd.testing.assert_frame_equal(pd.read_csv(info.files["csv"]), survey)
    pd.testing.assert_frame_equal(pd.read_parquet(info.files["parquet"]), survey)
    pd.testing.assert_frame_equal(pd.read_csv(info.files["truth"]), truth)
    only_csv = write_month(catalog, "2025-04", 10, tmp_path / "csv", formats=("csv",))
    assert set(only_csv.files) == {"csv", "truth"}


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"scenario": "chaos"}, ScenarioError, "unknown scenario 'chaos'"),
        (
            {"scenario": "shift", "shift_persona": "nobody"},
            ScenarioError,
            "unknown persona 'nobody'",
        ),
        ({"scenario": "new_segment", "new_share": 1.5}, ScenarioError, "new_share"),
        ({"scenario": "mix", "shares": [-1, 1, 1]}, ScenarioError, "mix shares"),
        ({"scenario": "rescale", "feature": "x11"}, ScenarioError, "unknown feature 'x11'"),
        ({"scenario": "zero_fill", "zero_share": 0.0}, ScenarioError, "zero_share"),
        ({"membership": "fixed"}, ScenarioError, "membership must be one of"),
        ({"n": 0}, ScenarioError, "n must be positive"),
    ],
)
def test_bad_parameters_are_refused(
    catalog: Catalog, kwargs: dict, error: type, message: str
) -> None:
    args = {"month": "2025-03", "n": 10, **kwargs}
    with pytest.raises(error, match=message):
        generate_month(catalog, **args)


def test_unknown_format_is_refused(catalog: Catalog, tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="unknown format"):
        write_month(catalog, "2025-03", 10, tmp_path, formats=("xlsx",))
