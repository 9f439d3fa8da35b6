"""Label a month with the champion (the batch_labeling pipeline; empty month = the month
before the run date, resolved by the package)."""

from persona_pipeline.utils.persona_cli import run_step

if "data_exporter" not in globals():
    from mage_ai.data_preparation.decorators import data_exporter


@data_exporter
def batch_label_month(*args, **kwargs):
    return run_step("batch_label", month=kwargs.get("month"), run_date=kwargs.get("execution_date"))
