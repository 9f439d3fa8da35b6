"""The two cases at the edge of what a month can show, and the ceilings that explain them.

A mild mix change (45/30/25) is `watch` almost always against the production reference
(the champion's three training months); against a single 500-row month the chi-square
test cannot reach 95 % at the false-alarm level the stable targets allow, and the
evaluation says so with the ceiling it prints.
"""

from __future__ import annotations

from collections import Counter

import pytest

from persona.monitoring.evaluation import (
    CASES,
    PRODUCTION_REFERENCE_ROWS,
    REFERENCE_ROWS,
    judge_month,
    mix_power,
    power_ceilings,
    shift_power,
)
from persona.settings import Settings, load_settings

BY_NAME = {case.name: case for case in CASES}
THIRDS = (1 / 3, 1 / 3, 1 / 3)


@pytest.fixture(scope="module")
def cfg() -> Settings:
    from tests.conftest import CATALOG

    return load_settings(_env_file=None, persona_catalog=CATALOG)


def test_mix_ceiling_needs_the_production_reference(cfg: Settings) -> None:
    single = mix_power(THIRDS, (0.45, 0.30, 0.25), 500, REFERENCE_ROWS, cfg.mix_alpha)
    window = mix_power(THIRDS, (0.45, 0.30, 0.25), 500, PRODUCTION_REFERENCE_ROWS, cfg.mix_alpha)
    assert 0.88 < single < 0.92  # no test of the shares reaches 95 % against 500 rows
    assert window > 0.97
    # No change, no power beyond the level itself.
    assert mix_power(THIRDS, THIRDS, 500, 500, 0.02) == pytest.approx(0.02, abs=1e-9)


def test_small_shift_ceiling_is_far_below_95_percent(cfg: Settings) -> None:
    assert shift_power(1.0, 2.0, 500, REFERENCE_ROWS, 3, cfg.persona_fit_alpha / 11) < 0.35
    assert shift_power(3.16, 2.0, 500, REFERENCE_ROWS, 3, cfg.persona_fit_alpha / 11) > 0.99
    assert len(power_ceilings(cfg)) == 4


def test_mild_mix_change_is_watch_against_the_production_reference(cfg: Settings) -> None:
    case = BY_NAME["mix 45/30/25 (1500-row reference)"]
    assert case.reference_rows == PRODUCTION_REFERENCE_ROWS
    counts = Counter(judge_month(cfg, case, 500, seed) for seed in range(20))
    assert counts["retrain"] == 0, counts
    assert counts["watch"] >= 18, counts


def test_stable_months_stay_quiet_against_the_production_reference(cfg: Settings) -> None:
    case = BY_NAME["stable (1500-row reference)"]
    counts = Counter(judge_month(cfg, case, 500, seed) for seed in range(7000, 7040))
    assert counts["retrain"] == 0, counts
    assert counts["watch"] <= 3, counts
