"""The reference a month is judged against: a baseline that grows with stable months.

A champion is judged against its training months (for the bootstrapped model: the one
calibration month). Every later month that the same champion judged ``no_drift`` joins
that reference, newest first, while the reference stays within `BASELINE_MAX_MONTHS`
months and `BASELINE_MAX_ROWS` rows (the training months always stay; a stable month
that would cross the row cap stops the growth there, so the reference is always the
training months plus the latest stable months, whole). The noise of one small
calibration month then stops steering the verdicts month after month, and the cost of a
check stays bounded. Only months before the judged month count, and each month's verdict
is the stored one (`store.monitoring.judged_months`), so a replay picks the same
reference; the check records the months (`reference_months`) and rows (`n_reference`).
"""

from __future__ import annotations

from collections.abc import Mapping

from persona.months import Month, Window

STABLE = "no_drift"


def grown_reference(
    training: Window,
    verdicts: Mapping[str, str],
    month: Month,
    max_months: int,
    rows: Mapping[str, int] | None = None,
    max_rows: int | None = None,
) -> Window:
    """The champion's training months plus its latest ``no_drift`` months before `month`.

    Args:
        training: The champion's training (or calibration) months.
        verdicts: Stored verdict per month of the same champion (`judged_months`).
        month: The month to judge (it and later months never count).
        max_months: Most months in all; the training months are always kept, then the
            latest stable months fill the rest.
        rows: Stored rows per month (needed with `max_rows`; a month missing counts 0).
        max_rows: Most rows in all (None: no row cap). Stable months join newest first
            while the total stays within it; the first that would cross it stops the
            growth (the training months always stay, whatever their rows).

    Returns:
        The reference window, in month order.
    """
    stable = sorted(m for m, v in verdicts.items() if v == STABLE and training.last < m < month)
    room = max(0, max_months - len(training))
    chosen = stable[max(0, len(stable) - room) :]
    if max_rows is not None:
        sizes = rows or {}
        total = sum(sizes.get(m, 0) for m in training)
        kept: list[str] = []
        for m in reversed(chosen):
            total += sizes.get(m, 0)
            if total > max_rows:
                break
            kept.append(m)
        chosen = kept[::-1]
    return Window.of([*training, *chosen])
