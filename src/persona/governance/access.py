"""Who may do what in MLflow: the platform's identities, people, and the webhook.

MLflow's basic-auth app (`mlflow server --app-name basic-auth`) grants READ, EDIT or
MANAGE per user and registered model; creating users and webhooks needs its admin. Run
as that admin (`MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD`),
`setup_mlflow` makes, idempotently (a rerun updates passwords, grants and the webhook):

| identity | permission on `MODEL_NAME` | why |
|---|---|---|
| ``persona-api`` | READ | reads the alias and downloads the model |
| ``persona-pipeline`` | EDIT | registers versions, sets ``challenger`` and tags |
| ``persona-governance`` | MANAGE | clears ``challenger`` (MLflow asks delete rights for that) |
| a promoter (`add_person`) | MANAGE | moves ``champion`` (and clears ``challenger``) |

MLflow has no permission per alias: EDIT lets the pipeline set ``champion`` as well as
``challenger``. The production pipeline never does (``AUTO_PROMOTE=false``), and every
champion move not made by `persona model promote` is recorded by the governance receiver
as ``external``, with the gates evaluated after the fact and an alert when they fail.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from mlflow.entities.webhook import WebhookEvent, WebhookEventStr
from mlflow.exceptions import MlflowException

from persona.errors import RegistryError, SettingsError
from persona.registry.tracking import client, is_server
from persona.settings import Settings

API_USER = "persona-api"
PIPELINE_USER = "persona-pipeline"
GOVERNANCE_USER = "persona-governance"
WEBHOOK_NAME = "persona-governance"
WEBHOOK_EVENTS: list[WebhookEventStr | WebhookEvent] = ["model_version_alias.created"]
MIN_PASSWORD = 12  # MLflow refuses shorter passwords
ROLE_PERMISSION = {"promoter": "MANAGE", "reader": "READ"}
Role = Literal["promoter", "reader"]


@dataclass(frozen=True)
class MlflowAccess:
    """What `setup_mlflow` ensured.

    Attributes:
        users: Identity -> ``created`` or ``updated``.
        grants: Identity -> permission on the model.
        webhook_id: The governance webhook's id.
        webhook: ``created`` or ``updated``.
    """

    users: dict[str, str]
    grants: dict[str, str]
    webhook_id: str
    webhook: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return asdict(self)


def identities(settings: Settings) -> list[tuple[str, str, str]]:
    """The platform's identities: (user name, password, permission on the model).

    Raises:
        SettingsError: A password is missing or shorter than MLflow accepts (names only).
    """
    wanted = [
        (API_USER, settings.mlflow_api_password, "READ", "MLFLOW_API_PASSWORD"),
        (PIPELINE_USER, settings.mlflow_pipeline_password, "EDIT", "MLFLOW_PIPELINE_PASSWORD"),
        (
            GOVERNANCE_USER,
            settings.mlflow_governance_password,
            "MANAGE",
            "MLFLOW_GOVERNANCE_PASSWORD",
        ),
    ]
    short = [setting for _, password, _, setting in wanted if len(password) < MIN_PASSWORD]
    if short:
        raise SettingsError(f"set {', '.join(short)} (at least {MIN_PASSWORD} characters)")
    return [(user, password, permission) for user, password, permission, _ in wanted]


def _auth(settings: Settings) -> Any:
    uri = settings.mlflow_tracking_uri
    if not is_server(uri):
        raise SettingsError(f"MLFLOW_TRACKING_URI must be an MLflow server, got {uri!r}")
    if not (settings.mlflow_tracking_username and settings.mlflow_tracking_password):
        raise SettingsError("set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (admin)")
    from mlflow.server.auth.client import AuthServiceClient

    client(settings)  # exports the admin identity and the request bounds
    return AuthServiceClient(uri)


def _ensure_user(auth: Any, username: str, password: str) -> str:
    try:
        auth.create_user(username, password)
        return "created"
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    auth.update_user_password(username, password)
    return "updated"


def _grant(auth: Any, username: str, model: str, permission: str) -> None:
    try:
        auth.grant_user_permission(username, "registered_model", model, permission)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        auth.revoke_user_permission(username, "registered_model", model)
        auth.grant_user_permission(username, "registered_model", model, permission)


def _ensure_model(settings: Settings) -> None:
    """Create the registered model as the admin, so no other identity owns it (MANAGE)."""
    try:
        client(settings).create_registered_model(settings.model_name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def ensure_webhook(settings: Settings) -> tuple[str, str]:
    """Register (or update) the webhook that calls the governance receiver.

    Returns:
        (webhook id, ``created`` or ``updated``).

    Raises:
        SettingsError: `GOVERNANCE_WEBHOOK_SECRET` is empty.
    """
    secret = settings.governance_webhook_secret
    if not secret:
        raise SettingsError("set GOVERNANCE_WEBHOOK_SECRET (the receiver refuses unsigned calls)")
    mlc = client(settings)
    url = settings.governance_webhook_url
    found = [w for w in mlc.list_webhooks(max_results=1000) if w.name == WEBHOOK_NAME]
    if found:
        mlc.update_webhook(
            found[0].webhook_id, url=url, events=WEBHOOK_EVENTS, secret=secret, status="ACTIVE"
        )
        return found[0].webhook_id, "updated"
    made = mlc.create_webhook(WEBHOOK_NAME, url, WEBHOOK_EVENTS, secret=secret, status="ACTIVE")
    return made.webhook_id, "created"


def setup_mlflow(settings: Settings) -> MlflowAccess:
    """Ensure the platform's identities, their grants on the model, and the webhook.

    Args:
        settings: The admin identity, the identities' passwords, `MODEL_NAME`,
            `GOVERNANCE_WEBHOOK_URL` and `GOVERNANCE_WEBHOOK_SECRET`.

    Returns:
        What was created or updated.

    Raises:
        SettingsError: A required setting is missing. RegistryError: MLflow refused.
    """
    wanted = identities(settings)
    auth = _auth(settings)
    model = settings.model_name
    users: dict[str, str] = {}
    grants: dict[str, str] = {}
    try:
        _ensure_model(settings)
        for username, password, permission in wanted:
            users[username] = _ensure_user(auth, username, password)
            _grant(auth, username, model, permission)
            grants[username] = permission
        webhook_id, webhook = ensure_webhook(settings)
    except MlflowException as exc:
        raise RegistryError(f"MLflow refused the set-up: {exc.message}") from exc
    return MlflowAccess(users, grants, webhook_id, webhook)


def add_person(settings: Settings, username: str, password: str, role: Role) -> dict[str, str]:
    """Create (or update) a person's MLflow identity with a role on the model.

    Args:
        settings: The admin identity and `MODEL_NAME`.
        username: The person's user name.
        password: Their password (at least 12 characters; read from stdin by the CLI).
        role: ``promoter`` (MANAGE: may move ``champion``) or ``reader`` (READ).

    Returns:
        The user, what happened to it and the permission granted.
    """
    if len(password) < MIN_PASSWORD:
        raise SettingsError(f"the password must have at least {MIN_PASSWORD} characters")
    auth = _auth(settings)
    permission = ROLE_PERMISSION[role]
    try:
        _ensure_model(settings)
        state = _ensure_user(auth, username, password)
        _grant(auth, username, settings.model_name, permission)
    except MlflowException as exc:
        raise RegistryError(f"MLflow refused: {exc.message}") from exc
    return {"user": username, "state": state, "permission": permission}
