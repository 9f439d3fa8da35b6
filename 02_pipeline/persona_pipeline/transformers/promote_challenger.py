"""Step 3 (drift branch): promote the challenger if the platform's rules allow it.

The decision (gates, needs review, auto-promotion, never back to an older version) is the
package's (`persona cycle promote`); this block only shows it.
"""

from persona_pipeline.utils.persona_cli import run_step

if "transformer" not in globals():
    from mage_ai.data_preparation.decorators import transformer


@transformer
def promote_challenger(challenger, *args, **kwargs):
    return run_step("promote", after=challenger)
