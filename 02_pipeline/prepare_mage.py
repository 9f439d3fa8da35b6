"""Prepare Mage's own database before `mage start` (run in .venv-mage by start_mage.sh).

1. API trigger token: Mage 0.9.80 reads `triggers.yaml` literally (no `env_var()`
   interpolation) and generates a random token for an API trigger without one. To keep the
   token out of git, the API triggers are created/updated in Mage's database (under
   MAGE_DATA_DIR) with MAGE_API_TOKEN; Mage's trigger sync keeps a stored token when the
   file has none.
2. Owner account: Mage creates its owner from DEFAULT_OWNER_EMAIL / DEFAULT_OWNER_PASSWORD
   only on its very first start. start_mage.sh sets those from MAGE_ADMIN_EMAIL /
   MAGE_ADMIN_PASSWORD; here an owner that already exists (same e-mail, or the default
   `admin` user) gets that e-mail and password, so the login is always the configured one.

Usage: python prepare_mage.py <project_dir>
"""

import os
import re
import sys


def _set_token(project: str, token: str) -> None:
    from mage_ai.data_preparation.models.triggers import ScheduleType, get_triggers_by_pipeline
    from mage_ai.orchestration.db.models.schedules import PipelineSchedule

    for name in sorted(os.listdir(os.path.join(project, "pipelines"))):
        for trigger in get_triggers_by_pipeline(name, repo_path=project):
            if trigger.schedule_type == ScheduleType.API:
                trigger.token = token
                PipelineSchedule.create_or_update_batch([trigger])
                print(f"API trigger {name}/{trigger.name}: token set from MAGE_API_TOKEN")


def _set_owner(email: str, password: str, username: str) -> None:
    from mage_ai.authentication.passwords import create_bcrypt_hash, generate_salt, verify_password
    from mage_ai.orchestration.db.models.oauth import User
    from sqlalchemy import or_

    user = User.query.filter(or_(User.email == email, User.username == username)).first()
    if user is None:
        print(f"Mage owner {email}: created by Mage on its first start")
        return
    if user.email == email and verify_password(password, user.password_hash):
        print(f"Mage owner {email}: password as configured")
        return
    salt = generate_salt()
    user.update(email=email, password_hash=create_bcrypt_hash(password, salt), password_salt=salt)
    print(f"Mage owner {email}: password set from MAGE_ADMIN_PASSWORD")


def main() -> int:
    project = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "persona_pipeline")
    token = os.environ.get("MAGE_API_TOKEN", "")
    if token and not re.fullmatch(r"\w+", token):
        print("MAGE_API_TOKEN must contain only letters, digits and _", file=sys.stderr)
        return 2
    os.environ["MAGE_REPO_PATH"] = project
    from mage_ai.settings.repo import set_repo_path

    set_repo_path(project)
    from mage_ai.orchestration.db.database_manager import database_manager

    database_manager.run_migrations()
    if token:
        _set_token(project, token)
    else:
        print("MAGE_API_TOKEN is empty: Mage generates a random API trigger token (see the UI)")
    email = os.environ.get("DEFAULT_OWNER_EMAIL", "")
    password = os.environ.get("DEFAULT_OWNER_PASSWORD", "")
    if email and password:
        _set_owner(email, password, os.environ.get("DEFAULT_OWNER_USERNAME") or "admin")
    return 0


if __name__ == "__main__":
    sys.exit(main())
