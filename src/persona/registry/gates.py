"""Promotion gates: a challenger must not be worse and must keep the champion's labels.

1. **metric**: the selection metric (`SELECTION_METRIC`) of each model's labelling of the
   same current data; the challenger passes when it is not worse than the champion by more
   than `GATE_METRIC_TOLERANCE` x |champion score| (relative tolerance). Waived (and
   reported) when drift demanded a change and the challenger has another number of
   personas: silhouette prefers fewer, larger clusters and would veto a discovered
   segment (such a challenger needs a person's review anyway).
2. **label_stability**: the share of rows of the champion's own training/calibration data
   that get the same persona id from both models must be >= `GATE_MIN_LABEL_STABILITY`,
   unless drift demanded a change (`drift_demanded`): then the check is reported, waived.
3. **absorbed**: rows of the current month the champion left unassigned that the
   challenger gives to an existing (non-candidate) persona are counted; their share of the
   month must be <= `GATE_MAX_ABSORBED_SHARE` (a challenger must not hide what the
   champion could not explain inside an old persona). Never waived. A persona that spread
   as a whole explains its own wider rows: the champion's radius is scaled by the growth
   of the persona's median distance (month vs the champion's data) before counting.

Governance (`review_reasons`): a challenger with a candidate or a retired persona, or with
a persona whose radius grew beyond `RADIUS_MAX_GROWTH`, needs a person's review and is
never promoted automatically, whatever `AUTO_PROMOTE` says (`flows.promotion_refusal`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from persona.model import PersonaModel
from persona.settings import GateSettings, TrainingSettings
from persona.training import LOWER_IS_BETTER, Alignment, label_stability, score_labels


@dataclass(frozen=True)
class GateCheck:
    """One promotion gate's verdict.

    Attributes:
        name: ``metric``, ``label_stability`` or ``absorbed``.
        passed: Whether the check passed.
        waived: Whether its failure is waived (drift demanded a change).
        detail: What was compared, for people.
    """

    name: str
    passed: bool
    waived: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class Absorbed:
    """Rows the champion leaves unexplained that the challenger gives to a champion persona.

    Attributes:
        rows: How many rows were absorbed.
        unassigned: Rows of the month the champion leaves unassigned.
        month_rows: Rows of the month.
        share: `rows` as a share of the month's rows.
        by_persona: Absorbed rows per champion persona id.
    """

    rows: int = 0
    unassigned: int = 0
    month_rows: int = 0
    share: float = 0.0
    by_persona: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {**asdict(self), "by_persona": dict(self.by_persona)}


@dataclass(frozen=True)
class GateResult:
    """Outcome of the promotion gates.

    Attributes:
        passed: Whether every (non-waived) check passed.
        metric: The selection metric compared.
        champion_score: The champion's score on the current data.
        challenger_score: The challenger's score on the same data.
        label_stability: Share of the champion's data with unchanged labels.
        drift_demanded: Whether the stability check was waived.
        checks: Each check's verdict.
        absorbed: The absorbed-rows count behind the ``absorbed`` check.
    """

    passed: bool
    metric: str
    champion_score: float
    challenger_score: float
    label_stability: float
    drift_demanded: bool
    checks: tuple[GateCheck, ...] = ()
    absorbed: Absorbed = field(default_factory=Absorbed)

    def check(self, name: str) -> GateCheck:
        """The check of that name."""
        return next(c for c in self.checks if c.name == name)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (NaN written as None)."""
        data: dict[str, Any] = {
            "passed": self.passed,
            "metric": self.metric,
            "champion_score": self.champion_score,
            "challenger_score": self.challenger_score,
            "label_stability": self.label_stability,
            "drift_demanded": self.drift_demanded,
            "checks": [c.to_dict() for c in self.checks],
            "absorbed": self.absorbed.to_dict(),
        }
        for key in ("champion_score", "challenger_score", "label_stability"):
            if not np.isfinite(data[key]):
                data[key] = None
        return data


def model_score(
    model: PersonaModel, features: np.ndarray, metric: str, sample_rows: int, seed: int
) -> float:
    """Score a model's nearest-persona partition of `features` with `metric` (NaN if < 2)."""
    pred = model.predict(features)
    inertia = float(np.sum(pred.distance**2))
    return score_labels(features, pred.nearest_index, inertia, sample_rows, seed)[metric]


@dataclass(frozen=True)
class GateInputs:
    """What the gates compare.

    Attributes:
        champion: The model serving now.
        challenger: The candidate.
        current: Current data (the challenger's training window).
        champion_data: The champion's own training / calibration rows.
        drift_demanded: Monitoring decided the personas must change (waives stability).
        month: Rows of the current month (default: `current`), for the absorbed check.
    """

    champion: PersonaModel
    challenger: PersonaModel
    current: np.ndarray
    champion_data: np.ndarray
    drift_demanded: bool = False
    month: np.ndarray | None = None


@dataclass(frozen=True)
class GateContext:
    """The measures every gate reads: the inputs, the thresholds and what was measured."""

    inputs: GateInputs
    gates: GateSettings
    metric: str
    champion_score: float
    challenger_score: float
    stability: float
    absorbed: Absorbed

    @property
    def other_k(self) -> bool:
        """Whether drift demanded a change and the challenger has another number of personas."""
        i = self.inputs
        return i.drift_demanded and i.challenger.k != i.champion.k


def measure(inputs: GateInputs, gates: GateSettings, training: TrainingSettings) -> GateContext:
    """Score both models, the label stability and the absorbed rows (what the gates judge)."""
    metric = training.selection_metric
    args = (metric, training.silhouette_sample_rows, training.random_seed)
    i = inputs
    month = i.current if i.month is None else i.month
    return GateContext(
        inputs=i,
        gates=gates,
        metric=metric,
        champion_score=model_score(i.champion, i.current, *args),
        challenger_score=model_score(i.challenger, i.current, *args),
        stability=label_stability(i.champion, i.challenger, i.champion_data),
        absorbed=absorbed_rows(i.champion, i.challenger, month, i.champion_data),
    )


def metric_gate(ctx: GateContext) -> GateCheck:
    """The challenger's score is not worse than the champion's beyond the tolerance."""
    old, new, tolerance = ctx.champion_score, ctx.challenger_score, ctx.gates.gate_metric_tolerance
    slack = tolerance * abs(old) if np.isfinite(old) else 0.0
    if not np.isfinite(new):
        ok = not np.isfinite(old)
    elif not np.isfinite(old):
        ok = True
    elif ctx.metric in LOWER_IS_BETTER:
        ok = new <= old + slack
    else:
        ok = new >= old - slack
    detail = f"{ctx.metric}: challenger {new:.6g} vs champion {old:.6g} (tolerance {tolerance:.0%})"
    if ctx.other_k:
        detail += "; waived: drift demanded a change of personas"
    return GateCheck("metric", bool(ok), bool(ctx.other_k and not ok), detail)


def stability_gate(ctx: GateContext) -> GateCheck:
    """Enough of the champion's data keep their persona (waived when drift demanded it)."""
    minimum = ctx.gates.gate_min_label_stability
    ok = ctx.stability >= minimum
    drift = ctx.inputs.drift_demanded
    detail = (
        f"{ctx.stability:.2%} of the champion's data keep their persona (minimum {minimum:.0%})"
    )
    if drift:
        detail += "; waived: drift demanded a change"
    return GateCheck("label_stability", bool(ok), bool(drift and not ok), detail)


def absorbed_gate(ctx: GateContext) -> GateCheck:
    """Few rows the champion leaves unexplained go to an old persona (never waived)."""
    absorbed, maximum = ctx.absorbed, ctx.gates.gate_max_absorbed_share
    detail = (
        f"the challenger gives {absorbed.rows} of the {absorbed.unassigned} rows the "
        f"champion leaves unassigned this month to one of the champion's personas, the "
        f"rest to its new personas or none ({absorbed.share:.2%} of "
        f"{absorbed.month_rows} rows; maximum {maximum:.0%})"
        + (f": {absorbed.by_persona}" if absorbed.by_persona else "")
    )
    return GateCheck("absorbed", bool(absorbed.share <= maximum), False, detail)


GATES: tuple[Callable[[GateContext], GateCheck], ...] = (metric_gate, stability_gate, absorbed_gate)


def evaluate_gates(
    inputs: GateInputs, gates: GateSettings, training: TrainingSettings
) -> GateResult:
    """Run the promotion gates (rules in the module docstring), in `GATES` order.

    Args:
        inputs: The models and the rows they are compared on.
        gates: The gate thresholds.
        training: The selection metric, its silhouette sample and seed.

    Returns:
        The verdict and every check.
    """
    ctx = measure(inputs, gates, training)
    checks = tuple(gate(ctx) for gate in GATES)
    return GateResult(
        passed=all(c.passed or c.waived for c in checks),
        metric=ctx.metric,
        champion_score=ctx.champion_score,
        challenger_score=ctx.challenger_score,
        label_stability=ctx.stability,
        drift_demanded=inputs.drift_demanded,
        checks=checks,
        absorbed=ctx.absorbed,
    )


def absorbed_rows(
    champion: PersonaModel,
    challenger: PersonaModel,
    month: np.ndarray,
    reference: np.ndarray | None = None,
) -> Absorbed:
    """Rows the champion leaves unexplained that the challenger gives to a champion persona.

    Args:
        champion: The model serving now.
        challenger: The candidate.
        month: Rows of the current month.
        reference: The champion's own rows; with them, each champion radius is scaled by
            the growth of its persona's median distance (a spread is not an absorption).

    Returns:
        The count; share is of the month's rows.
    """
    if len(month) == 0:
        return Absorbed()
    old = champion.predict(month)
    growth = np.ones(champion.k)
    if reference is not None and len(reference):
        ref = champion.predict(reference)
        for i in range(champion.k):
            a, b = old.distance[old.nearest_index == i], ref.distance[ref.nearest_index == i]
            if len(a) >= 10 and len(b) >= 10 and np.median(b) > 0:
                growth[i] = max(1.0, float(np.median(a) / np.median(b)))
    unexplained = old.distance > champion.radii[old.nearest_index] * growth[old.nearest_index]
    new = challenger.predict(month).persona_id
    taken = unexplained & np.isin(new, list(champion.persona_ids))
    ids, counts = np.unique(new[taken], return_counts=True)
    return Absorbed(
        rows=int(taken.sum()),
        unassigned=int((~old.assigned).sum()),
        month_rows=len(month),
        share=float(taken.mean()),
        by_persona=dict(zip(ids.tolist(), counts.tolist(), strict=True)),
    )


def review_reasons(alignment: Alignment) -> list[str]:
    """Why a challenger needs a person's review (empty: it does not).

    Args:
        alignment: The training alignment report (candidates, retired, grown radii).

    Returns:
        One sentence per candidate, retired persona and over-grown radius.
    """
    out = [
        f"candidate {c.persona_id}: {'?' if c.rows is None else c.rows} rows, nearest persona "
        f"{c.nearest_persona} at distance {c.distance:.1f}"
        for c in alignment.candidates
    ]
    out += [f"persona {r.persona_id} retired" for r in alignment.retired]
    out += [
        f"persona {g.persona_id} radius grew to {g.calibrated:.1f} beyond the bound "
        f"{g.bound:.1f} (capped)"
        for g in alignment.radius_grown
    ]
    return out
