"""Step 4 (drift branch): label the month with its final champion and close the month."""

from persona_pipeline.utils.persona_cli import run_step

if "data_exporter" not in globals():
    from mage_ai.data_preparation.decorators import data_exporter


@data_exporter
def label_after_retrain(promotion, *args, **kwargs):
    return run_step("label", after=promotion)
