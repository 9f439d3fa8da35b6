"""The reference a month is judged against: a baseline that grows with stable months.

A champion is judged against its training months (for the bootstrapped model: the one
calibration month). Every later month that the same champion judged ``no_drift`` joins
that reference, up to `BASELINE_MAX_MONTHS` months in all (the latest ones are kept), so
the noise of one small calibration month stops steering the verdicts month after month.
Only months before the judged month count, and each month's verdict is the stored one
(`store.monitoring.judged_months`), so a replay picks the same reference.
"""

from __future__ import annotations

from collections.abc import Mapping

from persona.months import Month, Window

STABLE = "no_drift"


def grown_reference(
    training: Window, verdicts: Mapping[str, str], month: Month, max_months: int
) -> Window:
    """The champion's training months plus its later ``no_drift`` months before `month`.

    Args:
        training: The champion's training (or calibration) months.
        verdicts: Stored verdict per month of the same champion (`judged_months`).
        month: The month to judge (it and later months never count).
        max_months: Most months in all; the training months are always kept, then the
            latest stable months fill the rest.

    Returns:
        The reference window, in month order.
    """
    stable = sorted(m for m, v in verdicts.items() if v == STABLE and training.last < m < month)
    room = max(0, max_months - len(training))
    return Window.of([*training, *stable[max(0, len(stable) - room) :]])
