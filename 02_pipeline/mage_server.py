"""`mage start` with PersonaOps' fixes (run in .venv-mage by start_mage.sh).

Mage 0.9.80 answers every error of its API trigger endpoint
(`POST /api/pipeline_schedules/<id>/pipeline_runs/<token>`) with HTTP 200 and a Python
stack trace in the body, a wrong token included. Here that endpoint answers a wrong or
missing token with 401, an unknown schedule with 404 and anything else with 500, each
with a short JSON error and no trace (the trace goes to Mage's log). A run whose blocks
never start (Mage's process-queue stall) is fired again by the server itself when
MAGE_STALL_REFIRE_S > 0 (`mage_watchdog.py`). Everything else is `mage start` unchanged:
usage is the same (`python mage_server.py start <project> ...`).
"""

import logging
import os
import sys

# Mage binds its database to the project path when its modules are first imported: set the
# project (argv: start <project>) before importing anything of Mage, as `mage start` does.
if len(sys.argv) > 2:
    os.environ["MAGE_REPO_PATH"] = os.path.abspath(sys.argv[2])
    from mage_ai.settings.repo import set_repo_path

    set_repo_path(os.environ["MAGE_REPO_PATH"])

from mage_ai.api.errors import ApiError
from mage_ai.cli.main import app
from mage_ai.server.api.errors import UnauthenticatedRequestException
from mage_ai.server.api.triggers import ApiTriggerPipelineHandler

log = logging.getLogger("persona.mage")


def _trigger_error(self, status_code, **kwargs):
    exc = (kwargs.get("exc_info") or (None, None, None))[1]
    if isinstance(exc, UnauthenticatedRequestException):
        status, message = 401, str(exc)
    elif isinstance(exc, ApiError):
        status, message = 404, "no such pipeline schedule"
    else:
        status, message = 500, "the pipeline run could not be created (see the Mage log)"
        log.error("API trigger failed", exc_info=kwargs.get("exc_info"))
    self.set_status(status)
    self.finish({"error": {"code": status, "message": message}})


ApiTriggerPipelineHandler.write_error = _trigger_error

if __name__ == "__main__":
    import mage_watchdog

    if len(sys.argv) > 2:
        mage_watchdog.start(sys.argv[2])
    sys.argv[0] = "mage"
    sys.exit(app())
