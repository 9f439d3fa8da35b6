"""The retraining decision: one function from check results to a verdict with reasons.

Verdicts, in order of precedence:

1. ``insufficient_data`` - the current month has fewer than `MIN_MONTH_ROWS` rows. Nothing
   else is judged (a tiny month is never a false alarm).
2. ``retrain`` - the personas no longer fit; any of:
   - drifted-feature share >= `DRIFT_SHARE_RETRAIN`;
   - unassigned rate >= `UNASSIGNED_RATE_RETRAIN` and above the reference's rate;
   - mean distance to the assigned centroid >= `DISTANCE_RATIO_RETRAIN` x the reference's;
   - a persona's centroid moved >= `CENTROID_SHIFT_RETRAIN` reference std, significant at
     `PERSONA_FIT_ALPHA`;
   - persona-mix PSI >= `PSI_RETRAIN`, with the chi-square test significant at
     `PERSONA_FIT_ALPHA`.
3. ``watch`` (alert only) - drifted-feature share >= `DRIFT_SHARE_WATCH`, or a significant
   persona-mix PSI >= `PSI_WATCH`.
4. ``no_drift`` - none of the above.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from persona.settings import Settings

if TYPE_CHECKING:
    from persona.monitoring.check import CheckResult

VERDICTS = ("no_drift", "watch", "retrain", "insufficient_data")


@dataclass(frozen=True)
class Decision:
    """A verdict and the readable reasons behind it.

    Attributes:
        verdict: One of `VERDICTS`.
        reasons: One sentence per rule that fired (or why nothing fired).
    """

    verdict: str
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"verdict": self.verdict, "reasons": list(self.reasons)}


def _pct(value: float) -> str:
    return f"{100.0 * value:.1f}%"


def _retrain_reasons(result: CheckResult, s: Settings) -> list[str]:
    reasons: list[str] = []
    drift, fit = result.drift, result.fit or {}
    if drift is not None and drift.drift_share >= s.drift_share_retrain:
        drifted = sum(f.drifted for f in drift.features)
        reasons.append(
            f"{drifted} of {len(drift.features)} features drifted (K-S p < "
            f"{s.drift_feature_threshold:g}): share {drift.drift_share:.2f} >= "
            f"{s.drift_share_retrain:.2f}"
        )
    rate, ref_rate = fit.get("unassigned_rate"), fit.get("reference_unassigned_rate") or 0.0
    if rate is not None and rate >= s.unassigned_rate_retrain and rate > ref_rate:
        reasons.append(
            f"unassigned rate {_pct(rate)} >= {_pct(s.unassigned_rate_retrain)} "
            f"(reference {_pct(ref_rate)})"
        )
    ratio = fit.get("distance_ratio")
    if ratio is not None and ratio >= s.distance_ratio_retrain:
        reasons.append(
            f"mean distance to the assigned persona {fit['mean_distance']:.2f} is "
            f"{ratio:.2f}x the reference {fit['reference_mean_distance']:.2f} "
            f"(>= {s.distance_ratio_retrain:g}x)"
        )
    for pid, entry in (fit.get("centroid_shift") or {}).items():
        shift, pvalue = entry.get("shift"), entry.get("pvalue")
        if shift is None or pvalue is None:
            continue
        if shift >= s.centroid_shift_retrain and pvalue < s.persona_fit_alpha:
            reasons.append(
                f"persona {pid} moved {shift:.2f} reference std (>= "
                f"{s.centroid_shift_retrain:g}, p={pvalue:.2g})"
            )
    mix = fit.get("mix") or {}
    if mix.get("psi", 0.0) >= s.psi_retrain and mix.get("chi2_pvalue", 1.0) < s.persona_fit_alpha:
        reasons.append(
            f"persona mix shifted: PSI {mix['psi']:.3f} >= {s.psi_retrain:g} "
            f"(chi-square p={mix['chi2_pvalue']:.2g})"
        )
    return reasons


def _watch_reasons(result: CheckResult, s: Settings) -> list[str]:
    reasons: list[str] = []
    drift, mix = result.drift, (result.fit or {}).get("mix") or {}
    if drift is not None and s.drift_share_watch <= drift.drift_share < s.drift_share_retrain:
        reasons.append(
            f"drifted-feature share {drift.drift_share:.2f} >= {s.drift_share_watch:.2f} "
            f"(drifted: {', '.join(f.feature for f in drift.features if f.drifted)})"
        )
    psi, pvalue = mix.get("psi", 0.0), mix.get("chi2_pvalue", 1.0)
    if s.psi_watch <= psi < s.psi_retrain and pvalue < s.persona_fit_alpha:
        reasons.append(
            f"persona mix moving: PSI {psi:.3f} >= {s.psi_watch:g} (chi-square p={pvalue:.2g})"
        )
    return reasons


def decide(result: CheckResult, settings: Settings) -> Decision:
    """Turn a check result into ``no_drift``, ``watch``, ``retrain`` or ``insufficient_data``.

    See the module docstring for the rules; every threshold is a setting.

    Args:
        result: What `monitoring.check` returned.
        settings: Thresholds.

    Returns:
        The verdict and one readable reason per rule that fired.
    """
    if result.n_current < settings.min_month_rows:
        return Decision(
            "insufficient_data",
            [
                f"current month has {result.n_current} rows, fewer than the minimum "
                f"{settings.min_month_rows} (MIN_MONTH_ROWS); no drift verdict"
            ],
        )
    retrain = _retrain_reasons(result, settings)
    watch = _watch_reasons(result, settings)
    if retrain:
        return Decision("retrain", retrain + watch)
    if watch:
        return Decision("watch", watch)
    fit = result.fit or {}
    share = result.drift.drift_share if result.drift is not None else 0.0
    summary = f"no threshold crossed: drifted-feature share {share:.2f}"
    if fit.get("unassigned_rate") is not None:
        summary += f", unassigned {_pct(fit['unassigned_rate'])}"
    if fit.get("distance_ratio") is not None:
        summary += f", distance ratio {fit['distance_ratio']:.2f}"
    if fit.get("mix"):
        summary += f", mix PSI {fit['mix']['psi']:.3f}"
    return Decision("no_drift", [summary])
