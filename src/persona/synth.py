"""Synthetic monthly survey data around the catalog centroids, with named drift scenarios.

Every month is drawn from Gaussian blobs centred on the persona centroids. Scenarios:

- ``stable``: std 2.0 around each centroid, equal persona shares.
- ``spread``: std 3.1 (the original study's drifted March).
- ``shift``: one persona's centroid moves `shift_distance` (default 3 std) along a seeded
  direction.
- ``new_segment``: a share (default 20%) of respondents come from a seeded centroid far from
  every catalog centroid; their ground truth is ``"new-segment"``.
- ``mix``: persona shares change (default 0.6 / 0.3 / 0.1 ...).

The same seed, month, scenario and parameters always give identical frames. The "structure"
of a scenario (shift direction, new-segment centroid) depends on the seed only, so the
same segment appears in every month generated with that seed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from persona.catalog import Catalog
from persona.errors import PersonaError
from persona.features import FEATURE_NAMES
from persona.months import parse_month

SCENARIOS: tuple[str, ...] = ("stable", "spread", "shift", "new_segment", "mix")
NEW_SEGMENT_ID = "new-segment"
STABLE_STD = 2.0
SPREAD_STD = 3.1
DEFAULT_MIX = (0.6, 0.3, 0.1)
FORMATS = ("csv", "parquet")


class ScenarioError(PersonaError):
    """An unknown scenario or an invalid scenario parameter."""


@dataclass(frozen=True)
class MonthPlan:
    """What to generate for one month.

    Attributes:
        month: ``YYYY-MM``.
        n: Number of respondents.
        scenario: One of `SCENARIOS`.
    """

    month: str
    n: int
    scenario: str = "stable"


def default_year(
    year: int = 2025, months: Iterable[int] = range(1, 6), n: int = 500
) -> list[MonthPlan]:
    """The original study's plan: Jan-May, 500 respondents a month, March drifted (`spread`).

    Args:
        year: Calendar year.
        months: Month numbers (1-12) to include.
        n: Respondents per month.

    Returns:
        One `MonthPlan` per month, March = ``spread``, the others ``stable``.
    """
    return [
        MonthPlan(parse_month(f"{year:04d}-{m:02d}"), n, "spread" if m == 3 else "stable")
        for m in months
    ]


def _rng(seed: int, *parts: str) -> np.random.Generator:
    digest = hashlib.sha256("|".join(parts).encode()).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFF, *words]))


def _counts(shares: Sequence[float], n: int) -> np.ndarray:
    """Split n into integer counts proportional to shares (largest remainder)."""
    weights = np.asarray(shares, dtype=np.float64)
    raw = weights / weights.sum() * n
    counts = np.floor(raw).astype(np.int64)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: n - int(counts.sum())]] += 1
    return counts


def new_segment_centroid(catalog: Catalog, seed: int, candidates: int = 256) -> np.ndarray:
    """A seeded centroid far from every catalog centroid (best of `candidates` draws).

    Args:
        catalog: The persona catalog.
        seed: Scenario seed.
        candidates: How many uniform draws in the catalog's bounding box to choose from.

    Returns:
        float64 vector of length 10 maximising the distance to the nearest persona.
    """
    centroids = catalog.centroids()
    low, high = centroids.min() - 2.0, centroids.max() + 2.0
    draws = _rng(seed, "new_segment").uniform(low, high, size=(candidates, centroids.shape[1]))
    nearest = np.linalg.norm(draws[:, None, :] - centroids[None, :, :], axis=2).min(axis=1)
    return draws[int(np.argmax(nearest))]


def shift_direction(seed: int, dims: int = len(FEATURE_NAMES)) -> np.ndarray:
    """A seeded unit vector: the direction the `shift` scenario moves a centroid."""
    vector = _rng(seed, "shift").standard_normal(dims)
    return vector / np.linalg.norm(vector)


def _check(scenario: str, n: int, std: float) -> None:
    if scenario not in SCENARIOS:
        raise ScenarioError(f"unknown scenario {scenario!r}: expected one of {list(SCENARIOS)}")
    if n <= 0:
        raise ScenarioError(f"n must be positive, got {n}")
    if not std > 0:
        raise ScenarioError(f"std must be positive, got {std}")


def generate_month(
    catalog: Catalog,
    month: str,
    n: int,
    scenario: str = "stable",
    seed: int = 42,
    *,
    std: float | None = None,
    shift_persona: str | None = None,
    shift_distance: float | None = None,
    new_share: float = 0.2,
    shares: Sequence[float] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generate one survey month and its ground truth.

    Args:
        catalog: Personas whose centroids the respondents are drawn around.
        month: ``YYYY-MM``.
        n: Number of respondents.
        scenario: One of `SCENARIOS`.
        seed: Base seed; the month and scenario are mixed in.
        std: Per-feature standard deviation (default 2.0, or 3.1 for ``spread``).
        shift_persona: Persona id moved by ``shift`` (default: the first persona).
        shift_distance: How far ``shift`` moves it (default 3 * std).
        new_share: Share of respondents from the new segment (``new_segment``).
        shares: Persona shares for ``mix`` (default 0.6/0.3/0.1, padded/truncated).

    Returns:
        ``(survey, truth)``: survey has ``respondent_id, survey_month, x1..x10``; truth has
        ``respondent_id, survey_month, persona_id, scenario``.

    Raises:
        ScenarioError: Unknown scenario, persona or invalid parameter.
        MonthError: `month` is not ``YYYY-MM``.
    """
    month = parse_month(month)
    sigma = std if std is not None else (SPREAD_STD if scenario == "spread" else STABLE_STD)
    _check(scenario, n, sigma)
    centroids = catalog.centroids()
    ids = list(catalog.ids)
    k = len(ids)
    persona_shares: Sequence[float] = [1.0] * k
    if scenario == "shift":
        target = shift_persona or ids[0]
        if target not in ids:
            raise ScenarioError(f"unknown persona {target!r} for shift: expected one of {ids}")
        distance = 3.0 * sigma if shift_distance is None else shift_distance
        centroids[ids.index(target)] += distance * shift_direction(seed, centroids.shape[1])
    elif scenario == "mix":
        wanted = list(shares) if shares is not None else list(DEFAULT_MIX)
        if any(s < 0 for s in wanted) or sum(wanted[:k]) <= 0:
            raise ScenarioError(f"mix shares must be non-negative with a positive sum: {wanted}")
        persona_shares = (wanted + [0.0] * k)[:k]
    elif scenario == "new_segment":
        if not 0.0 < new_share < 1.0:
            raise ScenarioError(f"new_share must be in (0, 1), got {new_share}")
        persona_shares = [(1.0 - new_share) / k] * k + [new_share]
        centroids = np.vstack([centroids, new_segment_centroid(catalog, seed)])
        ids.append(NEW_SEGMENT_ID)
    rng = _rng(seed, month, scenario)
    labels = np.repeat(np.arange(len(ids)), _counts(persona_shares, n))
    rng.shuffle(labels)
    values = centroids[labels] + rng.normal(0.0, sigma, size=(n, centroids.shape[1]))
    respondent = [f"{month.replace('-', '')}-{i:06d}" for i in range(1, n + 1)]
    survey = pd.DataFrame(values, columns=list(FEATURE_NAMES))
    survey.insert(0, "survey_month", month)
    survey.insert(0, "respondent_id", respondent)
    truth = pd.DataFrame(
        {
            "respondent_id": respondent,
            "survey_month": month,
            "persona_id": np.asarray(ids, dtype=object)[labels],
            "scenario": scenario,
        }
    )
    return survey, truth


def write_month(
    catalog: Catalog,
    month: str,
    n: int,
    out_dir: str | Path,
    scenario: str = "stable",
    seed: int = 42,
    formats: Sequence[str] = FORMATS,
    **params: Any,
) -> dict[str, Any]:
    """Generate a month and write ``survey_YYYY-MM.csv/.parquet`` and ``truth_YYYY-MM.csv``.

    Args:
        catalog: The persona catalog.
        month: ``YYYY-MM``.
        n: Respondents.
        out_dir: Folder (created if missing).
        scenario: One of `SCENARIOS`.
        seed: Base seed.
        formats: Any of ``"csv"`` and ``"parquet"`` for the survey file.
        **params: Scenario parameters passed to `generate_month`.

    Returns:
        ``{"month", "scenario", "rows", "files": {kind: path}}``.

    Raises:
        ScenarioError: Unknown format or scenario parameter.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ScenarioError(f"unknown format(s) {unknown or formats}: expected csv and/or parquet")
    survey, truth = generate_month(catalog, month, n, scenario, seed, **params)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    month = parse_month(month)
    files: dict[str, str] = {}
    if "csv" in formats:
        files["csv"] = str(folder / f"survey_{month}.csv")
        survey.to_csv(files["csv"], index=False)
    if "parquet" in formats:
        files["parquet"] = str(folder / f"survey_{month}.parquet")
        survey.to_parquet(files["parquet"], index=False)
    files["truth"] = str(folder / f"truth_{month}.csv")
    truth.to_csv(files["truth"], index=False)
    return {"month": month, "scenario": scenario, "rows": n, "files": files}
