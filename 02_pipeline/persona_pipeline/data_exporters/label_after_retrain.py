"""Drift branch: label the month with the champion after the promotion step."""

from persona_pipeline.utils.persona_cli import month_vars, run_persona

if "data_exporter" not in globals():
    from mage_ai.data_preparation.decorators import data_exporter


@data_exporter
def label_after_retrain(promotion, *args, **kwargs):
    if promotion.get("skipped"):
        return {"skipped": True}
    month, _ = month_vars(kwargs)
    return {"skipped": False, **run_persona("label", "--month", month)}
