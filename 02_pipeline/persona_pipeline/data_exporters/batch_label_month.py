"""Label a given month with the champion model (the batch_labeling pipeline)."""

from persona_pipeline.utils.persona_cli import month_vars, run_persona

if "data_exporter" not in globals():
    from mage_ai.data_preparation.decorators import data_exporter


@data_exporter
def batch_label_month(*args, **kwargs):
    month, _ = month_vars(kwargs)
    return run_persona("label", "--month", month)
