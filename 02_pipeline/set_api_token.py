"""Store MAGE_API_TOKEN as the token of every committed API trigger (run in .venv-mage).

Mage 0.9.80 reads `triggers.yaml` literally (no `env_var()` interpolation) and generates a
random token for an API trigger without one. To keep the token out of git, this script
creates/updates the API triggers in Mage's own database (under MAGE_DATA_DIR) with the
token from the environment before `mage start`; Mage's trigger sync keeps a stored token
when the file has none. Usage: python set_api_token.py <project_dir>
"""

import os
import re
import sys


def main() -> int:
    project = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "persona_pipeline")
    token = os.environ.get("MAGE_API_TOKEN", "")
    if not token:
        print("MAGE_API_TOKEN is empty: Mage generates a random API trigger token (see the UI)")
        return 0
    if not re.fullmatch(r"\w+", token):
        print("MAGE_API_TOKEN must contain only letters, digits and _", file=sys.stderr)
        return 2
    os.environ["MAGE_REPO_PATH"] = project
    from mage_ai.settings.repo import set_repo_path

    set_repo_path(project)
    from mage_ai.data_preparation.models.triggers import ScheduleType, get_triggers_by_pipeline
    from mage_ai.orchestration.db.database_manager import database_manager
    from mage_ai.orchestration.db.models.schedules import PipelineSchedule

    database_manager.run_migrations()
    for name in sorted(os.listdir(os.path.join(project, "pipelines"))):
        for trigger in get_triggers_by_pipeline(name, repo_path=project):
            if trigger.schedule_type == ScheduleType.API:
                trigger.token = token
                PipelineSchedule.create_or_update_batch([trigger])
                print(f"API trigger {name}/{trigger.name}: token set from MAGE_API_TOKEN")
    return 0


if __name__ == "__main__":
    sys.exit(main())
