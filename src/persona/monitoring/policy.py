"""The retraining decision: one function from check results to a verdict with reasons.

The same `decide` judges a production month (`persona monitor`, `persona run-month`) and
every seeded month of the policy evaluation (`make evaluate-policy`). Verdicts, in order:

1. ``insufficient_data`` - the current month has fewer than `MIN_MONTH_ROWS` rows.
2. ``retrain`` - the personas no longer describe the respondents: a persona moved, spread
   or is gone, or rows lie beyond every persona (a new segment). Every persona-fit test of
   the check (see `monitoring.fit`) enters one family; Holm's procedure keeps the chance of
   any false rejection at `PERSONA_FIT_ALPHA`, and a rejected test fires only with a
   minimum effect: `CENTROID_SHIFT_RETRAIN` (std), `DISTANCE_RATIO_RETRAIN` (spread
   ratio, wider only), `UNASSIGNED_MIN_EFFECT` (excess rate of far / unassigned rows),
   `PERSONA_GONE_RATIO` (current share / reference share). Reasons name the most
   specific cause first: rows that fit no persona (a new segment, with its size, nearest
   persona and the answers where it differs most; or rows within reach of a persona that
   lie nearer those rows than to it: ``near``), then a persona gone, moved, spread.
3. ``watch`` (alert only) - the persona mix changed (chi-square p < `MIX_ALPHA` and PSI >=
   `PSI_WATCH`) while every persona still fits: retraining would change nothing.
4. ``no_drift`` - none of the above.

The marginal per-feature K-S share (Evidently) is reported but not a rule: on a mixture of
personas it moves with the mix alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from persona.cycle_state import Verdict
from persona.monitoring.results import FitTest, PersonaFit, PersonaMix
from persona.monitoring.stats import holm
from persona.settings import PolicySettings

if TYPE_CHECKING:
    from persona.monitoring.check import CheckResult

VERDICTS = tuple(Verdict)
MAX_FEATURE_REASONS = 3
FEATURE_KINDS = ("feature_shift", "feature_spread")
SEGMENT_FEATURES = 3


@dataclass(frozen=True)
class Decision:
    """A verdict and the readable reasons behind it.

    Attributes:
        verdict: One of `VERDICTS`.
        reasons: One sentence per rule that fired (or why nothing fired).
        fired: The tests that fired.
    """

    verdict: str
    reasons: list[str] = field(default_factory=list)
    fired: tuple[FitTest, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "fired": [t.to_dict() for t in self.fired],
        }


def _pct(value: float) -> str:
    return f"{100.0 * value:.1f}%"


def big_enough(test: FitTest, s: PolicySettings) -> bool:
    """Whether a test's effect reaches the minimum effect of its kind."""
    kind, effect = test.kind, test.effect
    if effect is None or not np.isfinite(effect):
        return False
    if kind in ("shift", "feature_shift"):
        return abs(effect) >= s.centroid_shift_retrain
    if kind in ("spread", "feature_spread"):
        # Only a wider persona fails to describe its respondents; a tighter one (e.g. a
        # stable month against a window that held a spread month) still does.
        return bool(effect >= s.distance_ratio_retrain)
    if kind in ("far", "near", "unassigned"):
        return bool(effect >= s.unassigned_min_effect)
    if kind == "gone":
        return bool(effect <= s.persona_gone_ratio)
    return False


def fired_tests(fit: PersonaFit, s: PolicySettings) -> tuple[FitTest, ...]:
    """Tests rejected by Holm at `PERSONA_FIT_ALPHA` whose effect is big enough."""
    tests = fit.tests
    if not tests:
        return ()
    pvalues = np.array([np.nan if t.pvalue is None else t.pvalue for t in tests])
    rejected = holm(pvalues, s.persona_fit_alpha)
    return tuple(t for t, r in zip(tests, rejected, strict=True) if r and big_enough(t, s))


def _segment_text(fit: PersonaFit) -> str:
    """``, nearest <persona> (x3 +2.1, x7 -1.5)``: where the far rows sit, if known."""
    seg = fit.segment
    if seg is None or seg.nearest_persona is None:
        return ""
    text = f", nearest persona {seg.nearest_persona}"
    if seg.differences:
        shown = ", ".join(f"{f} {d:+.1f}" for f, d in seg.differences[:SEGMENT_FEATURES])
        text += f" ({shown} std from it)"
    return text


def _farthest(m: int) -> str:
    """``farthest``, ``2nd-farthest``, ``3rd-farthest``... (the m-th from the top)."""
    if m == 1:
        return "farthest"
    suffix = "th" if 10 <= m % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(m % 10, "th")
    return f"{m}{suffix}-farthest"


def _describe(test: FitTest, fit: PersonaFit) -> str:
    kind, pid, p, effect = test.kind, test.persona, test.pvalue, test.effect
    if kind == "shift":
        return f"persona {pid} moved {effect:.2f} std (p={p:.2g})"
    if kind == "spread":
        return f"persona {pid} spread x{effect:.2f} (p={p:.2g})"
    if kind == "feature_shift":
        return f"{test.feature} of persona {pid} shifted {effect:+.2f} std (p={p:.2g})"
    if kind == "feature_spread":
        return f"{test.feature} of persona {pid} spread x{effect:.2f} (p={p:.2g})"
    if kind == "far" and fit.far is not None:
        far = fit.far
        return (
            f"new segment? {far.count} rows ({_pct(far.rate)}) lie farther from every persona "
            f"than the reference's {_farthest(far.m)} row (distance {far.threshold:.1f}; "
            f"{far.expected:.1f} expected, p={p:.2g}){_segment_text(fit)}"
        )
    if kind == "near":
        rows = fit.segment.rows if fit.segment is not None else 0
        return (
            f"new segment? {_pct(effect)} more rows than in the reference lie beside persona "
            f"{pid}, nearer the {rows} rows beyond every persona than to it (Fisher p={p:.2g})"
            f"{_segment_text(fit)}"
        )
    if kind == "unassigned":
        return (
            f"unassigned rate {_pct(fit.unassigned_rate or 0.0)} vs reference "
            f"{_pct(fit.reference_unassigned_rate or 0.0)} (binomial p={p:.2g})"
        )
    return f"persona {pid} is gone: share x{effect:.2f} of the reference (p={p:.2g})"


def _rank(test: FitTest, fit: PersonaFit, changed: set[str | None]) -> int:
    """Most specific cause first: a new segment, then a persona, then its features.

    Rows beyond every persona are named first unless the persona they sit nearest to
    changed itself (then its spread explains them: the persona comes first).
    """
    seg = fit.segment
    segment_first = seg is None or seg.nearest_persona not in changed
    order = {"far": 0, "near": 1, "unassigned": 2, "gone": 3, "shift": 4, "spread": 5}
    if not segment_first:
        order.update(far=6, near=7, unassigned=8)
    return order.get(test.kind, 9)


def _retrain_reasons(fired: tuple[FitTest, ...], fit: PersonaFit, s: PolicySettings) -> list[str]:
    changed = {t.persona for t in fired if t.kind in ("shift", "spread", "gone")}
    persona_level = sorted(
        (t for t in fired if t.kind not in FEATURE_KINDS), key=lambda t: _rank(t, fit, changed)
    )
    features = sorted((t for t in fired if t.kind in FEATURE_KINDS), key=lambda t: t.pvalue)
    reasons = [_describe(t, fit) for t in persona_level]
    reasons += [_describe(t, fit) for t in features[:MAX_FEATURE_REASONS]]
    if len(features) > MAX_FEATURE_REASONS:
        reasons.append(f"{len(features) - MAX_FEATURE_REASONS} more feature-level changes")
    reasons.append(f"Holm over {len(fit.tests)} persona-fit tests at alpha {s.persona_fit_alpha:g}")
    return reasons


def mix_reason(mix: PersonaMix) -> str:
    """The persona shares of both sides as one sentence."""
    shares = ", ".join(
        f"{pid} {_pct(mix.current_shares[pid])} (was {_pct(mix.reference_shares[pid])})"
        for pid in mix.bins
    )
    return f"persona mix changed: {shares}; chi-square p={mix.chi2_pvalue:.2g}, PSI {mix.psi:.3f}"


def _mix_changed(mix: PersonaMix, s: PolicySettings) -> bool:
    return mix.chi2_pvalue < s.mix_alpha and mix.psi >= s.psi_watch


def decide(result: CheckResult, policy: PolicySettings) -> Decision:
    """Turn a check result into ``no_drift``, ``watch``, ``retrain`` or ``insufficient_data``.

    See the module docstring for the rules; every threshold is a setting.

    Args:
        result: What `monitoring.check` returned.
        policy: The thresholds (`Settings.policy`).

    Returns:
        The verdict, one readable reason per rule that fired, and the fired tests.
    """
    fit = result.fit
    if result.n_current < policy.min_month_rows or fit is None:
        return Decision(
            "insufficient_data",
            [
                f"current month has {result.n_current} rows, fewer than the minimum "
                f"{policy.min_month_rows} (MIN_MONTH_ROWS); no drift verdict"
            ],
        )
    mix = fit.mix
    fired = fired_tests(fit, policy)
    watch = [mix_reason(mix)] if _mix_changed(mix, policy) else []
    if fired:
        return Decision("retrain", _retrain_reasons(fired, fit, policy) + watch, fired)
    if watch:
        return Decision("watch", watch)
    summary = "no persona moved, spread or vanished and no rows beyond the personas"
    if fit.unassigned_rate is not None:
        summary += f"; unassigned {_pct(fit.unassigned_rate)}"
    summary += f", mix PSI {mix.psi:.3f} (p={mix.chi2_pvalue:.2g})"
    if result.drift is not None:
        summary += f"; marginal K-S drifted share {result.drift.drift_share:.2f} (information)"
    return Decision("no_drift", [summary])
