"""Step 1 of the monthly cycle: govern the champion, label and check the month, alert.

Returns the step's result; its `branch` (`retrain` or `label`) picks the branch below.
"""

from persona_pipeline.utils.persona_cli import run_step

if "data_loader" not in globals():
    from mage_ai.data_preparation.decorators import data_loader


@data_loader
def check_drift(*args, **kwargs):
    # Pipeline variables go to the package as given: an empty month is resolved there.
    return run_step(
        "check",
        month=kwargs.get("month"),
        run_date=kwargs.get("execution_date"),
        reference=kwargs.get("reference_month"),
    )
