"""No-drift branch: label the month with the current champion."""

from persona_pipeline.utils.persona_cli import month_vars, run_persona, verdict

if "data_exporter" not in globals():
    from mage_ai.data_preparation.decorators import data_exporter


@data_exporter
def label_with_champion(check, *args, **kwargs):
    # `mage run` does not evaluate conditionals: re-check the decision here.
    if verdict(check) == "retrain":
        return {"skipped": True, "verdict": "retrain"}
    month, _ = month_vars(kwargs)
    return {"skipped": False, **run_persona("label", "--month", month)}
