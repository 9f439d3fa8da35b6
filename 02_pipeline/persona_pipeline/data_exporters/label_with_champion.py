"""Step 4 (no-drift branch): label the month and close it (`persona cycle label`).

On a drifted month the step itself waits for the promote step and answers `skipped`
(what `mage run`, which does not evaluate conditionals, relies on).
"""

from persona_pipeline.utils.persona_cli import run_step

if "data_exporter" not in globals():
    from mage_ai.data_preparation.decorators import data_exporter


@data_exporter
def label_with_champion(check, *args, **kwargs):
    return run_step("label", after=check)
