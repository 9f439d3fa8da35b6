"""Synthetic monthly survey data around the catalog centroids, with named drift scenarios.

Every month is drawn from Gaussian blobs centred on the persona centroids. Persona
membership is drawn at random (multinomial) by default, so a month's persona counts carry
the sampling noise a real month has; ``membership="exact"`` gives exact shares instead.
Scenarios:

- ``stable``: std 2.0 around each centroid, equal persona probabilities.
- ``spread``: std 3.1 by default (the original study's drifted March); `std` sets another.
- ``shift``: one persona moves. `shift_sigma` moves every answer of it by that many std
  (random signs, so the centroid moves ``shift_sigma * sqrt(10)`` std); `shift_distance`
  moves it that Euclidean distance along a seeded direction (default 3 std).
- ``new_segment``: a share (default 20%) of respondents come from a seeded centroid placed
  `new_distance` (default: seeded in 12-20) from its nearest persona; truth
  ``"new-segment"``.
- ``mix``: persona probabilities change (default 0.6 / 0.3 / 0.1 ...).
- ``vanish``: one persona (`shift_persona`, default the first) has no respondents.
- ``rescale``: one answer (`feature`, default x3) is multiplied by `factor` (default 2).
- ``sign_flip``: one answer (`feature`) changes sign.
- ``zero_fill``: a share (`zero_share`, default 10%) of respondents have the answers
  x6..x10 recorded as 0 (a form that fills unanswered questions with zeros).

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
from persona.months import Month

SCENARIOS: tuple[str, ...] = (
    "stable",
    "spread",
    "shift",
    "new_segment",
    "mix",
    "vanish",
    "rescale",
    "sign_flip",
    "zero_fill",
)
NEW_SEGMENT_ID = "new-segment"
STABLE_STD = 2.0
SPREAD_STD = 3.1
DEFAULT_MIX = (0.6, 0.3, 0.1)
NEW_DISTANCE_RANGE = (12.0, 20.0)
ZERO_FEATURES = FEATURE_NAMES[5:]
FORMATS = ("csv", "parquet")
MEMBERSHIPS = ("random", "exact")


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

    month: Month
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
        MonthPlan(Month(f"{year:04d}-{m:02d}"), n, "spread" if m == 3 else "stable") for m in months
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


def draw_membership(
    shares: Sequence[float], n: int, rng: np.random.Generator, membership: str = "random"
) -> np.ndarray:
    """Draw the group index of each of `n` respondents.

    Args:
        shares: Group weights (normalised here).
        n: Respondents.
        rng: Seeded generator.
        membership: ``"random"`` (multinomial, the default) or ``"exact"`` (largest
            remainder counts, shuffled).

    Returns:
        int64 array of length n.
    """
    weights = np.asarray(shares, dtype=np.float64)
    if membership == "random":
        return rng.choice(len(weights), size=n, p=weights / weights.sum()).astype(np.int64)
    labels = np.repeat(np.arange(len(weights)), _counts(weights.tolist(), n))
    rng.shuffle(labels)
    return labels


def new_segment_centroid(catalog: Catalog, seed: int, distance: float | None = None) -> np.ndarray:
    """A seeded centroid whose nearest catalog persona is `distance` away.

    It starts from a seeded persona, goes `distance` along a seeded direction and keeps the
    first direction whose point is not closer to any other persona.

    Args:
        catalog: The persona catalog.
        seed: Scenario seed.
        distance: Distance to the nearest persona (default: seeded uniform in 12-20).

    Returns:
        float64 vector of length 10.
    """
    centroids = catalog.centroids()
    rng = _rng(seed, "new_segment")
    low, high = NEW_DISTANCE_RANGE
    wanted = float(rng.uniform(low, high)) if distance is None else float(distance)
    origin = centroids[int(rng.integers(len(centroids)))]
    best, best_gap = origin, -np.inf
    for _ in range(256):
        step = rng.standard_normal(centroids.shape[1])
        point = origin + wanted * step / np.linalg.norm(step)
        gap = float(np.linalg.norm(centroids - point, axis=1).min())
        if gap >= wanted - 1e-9:
            return point
        if gap > best_gap:
            best, best_gap = point, gap
    return best


def shift_direction(seed: int, dims: int = len(FEATURE_NAMES)) -> np.ndarray:
    """A seeded unit vector: the direction the `shift` scenario moves a centroid."""
    vector = _rng(seed, "shift").standard_normal(dims)
    return vector / np.linalg.norm(vector)


def shift_signs(seed: int, dims: int = len(FEATURE_NAMES)) -> np.ndarray:
    """Seeded +-1 per feature: how `shift_sigma` moves each answer."""
    return np.where(_rng(seed, "shift-signs").random(dims) < 0.5, -1.0, 1.0)


def _check(scenario: str, n: int, std: float, membership: str) -> None:
    if scenario not in SCENARIOS:
        raise ScenarioError(f"unknown scenario {scenario!r}: expected one of {list(SCENARIOS)}")
    if n <= 0:
        raise ScenarioError(f"n must be positive, got {n}")
    if not std > 0:
        raise ScenarioError(f"std must be positive, got {std}")
    if membership not in MEMBERSHIPS:
        raise ScenarioError(f"membership must be one of {list(MEMBERSHIPS)}, got {membership!r}")


def _persona_index(ids: list[str], persona: str | None, what: str) -> int:
    target = persona or ids[0]
    if target not in ids:
        raise ScenarioError(f"unknown persona {target!r} for {what}: expected one of {ids}")
    return ids.index(target)


def _feature_index(feature: str) -> int:
    if feature not in FEATURE_NAMES:
        raise ScenarioError(f"unknown feature {feature!r}: expected one of {list(FEATURE_NAMES)}")
    return FEATURE_NAMES.index(feature)


def _structure(
    catalog: Catalog,
    scenario: str,
    seed: int,
    sigma: float,
    shift_persona: str | None,
    shift_distance: float | None,
    shift_sigma: float | None,
    new_share: float,
    new_distance: float | None,
    shares: Sequence[float] | None,
) -> tuple[np.ndarray, list[str], list[float]]:
    """Centroids, group ids and group probabilities of a scenario (before sampling)."""
    centroids = catalog.centroids()
    ids = list(catalog.ids)
    k = len(ids)
    persona_shares: list[float] = [1.0] * k
    if scenario == "shift":
        index = _persona_index(ids, shift_persona, "shift")
        if shift_sigma is not None:
            centroids[index] += shift_sigma * sigma * shift_signs(seed, centroids.shape[1])
        else:
            distance = 3.0 * sigma if shift_distance is None else shift_distance
            centroids[index] += distance * shift_direction(seed, centroids.shape[1])
    elif scenario == "mix":
        wanted = list(shares) if shares is not None else list(DEFAULT_MIX)
        if any(s < 0 for s in wanted) or sum(wanted[:k]) <= 0:
            raise ScenarioError(f"mix shares must be non-negative with a positive sum: {wanted}")
        persona_shares = (wanted + [0.0] * k)[:k]
    elif scenario == "vanish":
        if k < 2:
            raise ScenarioError("vanish needs at least two personas")
        gone = _persona_index(ids, shift_persona, "vanish")
        persona_shares = [0.0 if i == gone else 1.0 for i in range(k)]
    elif scenario == "new_segment":
        if not 0.0 < new_share < 1.0:
            raise ScenarioError(f"new_share must be in (0, 1), got {new_share}")
        persona_shares = [(1.0 - new_share) / k] * k + [new_share]
        centroids = np.vstack([centroids, new_segment_centroid(catalog, seed, new_distance)])
        ids.append(NEW_SEGMENT_ID)
    return centroids, ids, persona_shares


def generate_month(
    catalog: Catalog,
    month: Month,
    n: int,
    scenario: str = "stable",
    seed: int = 42,
    *,
    std: float | None = None,
    shift_persona: str | None = None,
    shift_distance: float | None = None,
    shift_sigma: float | None = None,
    new_share: float = 0.2,
    new_distance: float | None = None,
    shares: Sequence[float] | None = None,
    feature: str = "x3",
    factor: float = 2.0,
    zero_share: float = 0.1,
    membership: str = "random",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generate one survey month and its ground truth.

    Args:
        catalog: Personas whose centroids the respondents are drawn around.
        month: ``YYYY-MM``.
        n: Number of respondents.
        scenario: One of `SCENARIOS`.
        seed: Base seed; the month and scenario are mixed in.
        std: Per-feature standard deviation (default 2.0, or 3.1 for ``spread``).
        shift_persona: Persona moved by ``shift`` / removed by ``vanish`` (default first).
        shift_distance: Euclidean distance ``shift`` moves it (default 3 * std).
        shift_sigma: If given, ``shift`` moves every answer by this many std instead.
        new_share: Share of respondents from the new segment (``new_segment``).
        new_distance: Distance of the new segment to its nearest persona.
        shares: Persona probabilities for ``mix`` (default 0.6/0.3/0.1, padded/truncated).
        feature: The answer changed by ``rescale`` and ``sign_flip``.
        factor: Multiplier of ``rescale``.
        zero_share: Share of respondents with zero-filled answers (``zero_fill``).
        membership: ``"random"`` (multinomial, default) or ``"exact"`` shares.

    Returns:
        ``(survey, truth)``: survey has ``respondent_id, survey_month, x1..x10``; truth has
        ``respondent_id, survey_month, persona_id, scenario``.

    Raises:
        ScenarioError: Unknown scenario, persona, feature or invalid parameter.
    """
    sigma = std if std is not None else (SPREAD_STD if scenario == "spread" else STABLE_STD)
    _check(scenario, n, sigma, membership)
    centroids, ids, persona_shares = _structure(
        catalog, scenario, seed, sigma, shift_persona, shift_distance, shift_sigma,
        new_share, new_distance, shares,
    )  # fmt: skip
    if scenario == "zero_fill" and not 0.0 < zero_share <= 1.0:
        raise ScenarioError(f"zero_share must be in (0, 1], got {zero_share}")
    column = _feature_index(feature) if scenario in ("rescale", "sign_flip") else 0
    rng = _rng(seed, month, scenario)
    labels = draw_membership(persona_shares, n, rng, membership)
    values = centroids[labels] + rng.normal(0.0, sigma, size=(n, centroids.shape[1]))
    if scenario == "rescale":
        values[:, column] *= factor
    elif scenario == "sign_flip":
        values[:, column] *= -1.0
    elif scenario == "zero_fill":
        zeroed = np.flatnonzero(rng.random(n) < zero_share)
        columns = np.array([FEATURE_NAMES.index(f) for f in ZERO_FEATURES])
        values[np.ix_(zeroed, columns)] = 0.0
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


@dataclass(frozen=True)
class WrittenMonth:
    """The files `write_month` wrote for one month.

    Attributes:
        month: The month.
        scenario: Its scenario.
        rows: Respondents.
        files: Path per kind (``csv``, ``parquet``, ``truth``).
    """

    month: Month
    scenario: str
    rows: int
    files: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """``{"month", "scenario", "rows", "files": {kind: path}}`` (JSON-ready)."""
        return {"month": str(self.month), "scenario": self.scenario, "rows": self.rows,
                "files": dict(self.files)}  # fmt: skip


def write_month(
    catalog: Catalog,
    month: Month,
    n: int,
    out_dir: str | Path,
    scenario: str = "stable",
    seed: int = 42,
    formats: Sequence[str] = FORMATS,
    **params: Any,
) -> WrittenMonth:
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
        The month and the files written (`WrittenMonth`).

    Raises:
        ScenarioError: Unknown format or scenario parameter.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ScenarioError(f"unknown format(s) {unknown or formats}: expected csv and/or parquet")
    survey, truth = generate_month(catalog, month, n, scenario, seed, **params)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    if "csv" in formats:
        files["csv"] = str(folder / f"survey_{month}.csv")
        survey.to_csv(files["csv"], index=False)
    if "parquet" in formats:
        files["parquet"] = str(folder / f"survey_{month}.parquet")
        survey.to_parquet(files["parquet"], index=False)
    files["truth"] = str(folder / f"truth_{month}.csv")
    truth.to_csv(files["truth"], index=False)
    return WrittenMonth(month, scenario, n, files)
