"""Registered model versions: register (all or nothing), aliases, lookup and loading."""

from __future__ import annotations

import json
import logging
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from persona.errors import ModelError, RegistryError
from persona.model import LoadedModel, PersonaModel, read_model_folder, with_names
from persona.months import Window, parse_window
from persona.registry.results import RegisteredVersion
from persona.registry.tracking import client
from persona.settings import Settings

MODEL_VERSIONS_TAG = "mlflow.modelVersions"  # mlflow.utils.mlflow_tags.MLFLOW_MODEL_VERSIONS
CHAMPION = "champion"
CHALLENGER = "challenger"
NAME_TAG = "persona_name."  # + persona id: a name a person gave (model and version tags)
_ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/]+)$")
_VERSION_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")

log = logging.getLogger(__name__)


def _not_found(exc: MlflowException) -> bool:
    return exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE")


def get_version(mlc: MlflowClient, name: str, version: str) -> ModelVersion:
    """Return one version or raise `RegistryError` saying it does not exist."""
    try:
        return mlc.get_model_version(name, str(version))
    except MlflowException as exc:
        if _not_found(exc):
            raise RegistryError(f"model {name!r} has no version {version!r}") from None
        raise RegistryError(f"cannot read version {version} of {name!r}: {exc}") from exc


def clear_challenger(mlc: MlflowClient, name: str) -> bool:
    """Delete ``challenger``; a refusal is logged, never raised.

    Returns:
        Whether the alias was deleted.

    MLflow asks MANAGE to delete an alias: the governance identity has it, the pipeline's
    (EDIT) does not, so a cycle that finds the move first records it and leaves the alias
    to the governance receiver or a promoter.
    """
    try:
        mlc.delete_registered_model_alias(name, CHALLENGER)
    except MlflowException as exc:
        log.warning("cannot clear the challenger alias of %s: %s", name, exc.message)
        return False
    return True


def version_by_alias(mlc: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """Return the version an alias points at, or None when unset / no such model."""
    try:
        return mlc.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if _not_found(exc):
            return None
        raise RegistryError(f"cannot resolve alias {alias!r} of {name!r}: {exc}") from exc


def alias_version(settings: Settings, alias: str) -> str | None:
    """The version number an alias of `MODEL_NAME` points at (None when unset)."""
    found = version_by_alias(client(settings), settings.model_name, alias)
    return None if found is None else str(found.version)


def all_versions(mlc: MlflowClient, name: str) -> list[ModelVersion]:
    """Every version of a registered model, oldest first (empty when it does not exist)."""
    quoted = name.replace("'", "\\'")
    found = mlc.search_model_versions(f"name='{quoted}'")
    return sorted(found, key=lambda mv: int(mv.version))


def find_version(mlc: MlflowClient, name: str, tags: dict[str, str]) -> ModelVersion | None:
    """The newest version whose tags include all of `tags` (idempotency look-up)."""
    for mv in reversed(all_versions(mlc, name)):
        if all(mv.tags.get(k) == v for k, v in tags.items()):
            return mlc.get_model_version(name, mv.version)  # search results lack aliases
    return None


def register(
    mlc: MlflowClient,
    name: str,
    model_info: Any,
    run_id: str,
    tags: dict[str, str],
    finish: Callable[[ModelVersion], None],
) -> ModelVersion:
    """Create a version and run `finish` on it (aliases, tags); delete it if anything fails.

    Raises:
        RegistryError: Registration failed; no version is left behind.
    """
    try:
        mlc.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise RegistryError(f"cannot create registered model {name!r}: {exc}") from exc
    try:
        mv = mlc.create_model_version(
            name, model_info.model_uri, run_id=run_id, tags=tags, model_id=model_info.model_id
        )
    except MlflowException as exc:
        raise RegistryError(f"cannot register a version of {name!r}: {exc}") from exc
    try:
        finish(mv)
        if model_info.model_id:
            link_logged_model(mlc, model_info.model_id, name, str(mv.version))
    except BaseException:
        mlc.delete_model_version(name, mv.version)
        raise
    return mv


def link_logged_model(mlc: MlflowClient, model_id: str, name: str, version: str) -> None:
    """Record a version on its logged model, as `mlflow.register_model` does.

    The MLflow UI lists a logged model's versions (and calls it registered) from the
    logged model's ``mlflow.modelVersions`` tag; `create_model_version` alone leaves it
    unset.
    """
    model = mlc.get_logged_model(model_id)
    links = json.loads(model.tags.get(MODEL_VERSIONS_TAG) or "[]")
    entry = {"name": name, "version": version}
    if entry not in links:
        mlc.set_logged_model_tags(model_id, {MODEL_VERSIONS_TAG: json.dumps([*links, entry])})


def list_versions(settings: Settings) -> list[RegisteredVersion]:
    """Every version of `MODEL_NAME` with its aliases and tags, oldest first."""
    mlc = client(settings)
    versions = all_versions(mlc, settings.model_name)
    aliases: dict[str, list[str]] = {}
    if versions:
        for alias, number in mlc.get_registered_model(settings.model_name).aliases.items():
            aliases.setdefault(str(number), []).append(alias)
    return [
        RegisteredVersion(
            version=str(mv.version),
            aliases=tuple(sorted(aliases.get(str(mv.version), []))),
            created_at=mv.creation_timestamp,
            run_id=mv.run_id,
            source=mv.source,
            tags=dict(mv.tags),
        )
        for mv in versions
    ]


def champion_reference_months(settings: Settings) -> Window | None:
    """The months the champion was trained / calibrated on (its `training_months` tag)."""
    mv = version_by_alias(client(settings), settings.model_name, CHAMPION)
    if mv is None or not mv.tags.get("training_months"):
        return None
    return parse_window(mv.tags["training_months"])


def _read_folder(folder: str | Path) -> PersonaModel:
    """`model.read_model_folder`, its failure as a `RegistryError`."""
    try:
        return read_model_folder(folder)
    except ModelError as exc:
        raise RegistryError(f"not a persona pyfunc model folder: {exc}") from None


def load_model_for_serving(settings: Settings, uri: str | None = None) -> LoadedModel:
    """Load a model by URI: ``models:/name@alias``, ``models:/name/3`` or a local folder.

    Only the JSON artifact is read (no pyfunc import cost).

    Args:
        settings: The settings (tracking URI, `MODEL_URI`, `MODEL_NAME`, `MODEL_ALIAS`).
        uri: Overrides `MODEL_URI`; the default is ``models:/{MODEL_NAME}@{MODEL_ALIAS}``.

    Returns:
        The model with its name, version, alias, uri and tags.

    Raises:
        RegistryError: Unknown alias or version, unreachable registry, or a bad artifact.
    """
    uri = uri or settings.model_uri or f"models:/{settings.model_name}@{settings.model_alias}"
    by_alias, by_version = _ALIAS_URI.match(uri), _VERSION_URI.match(uri)
    if not (by_alias or by_version):
        if uri.startswith("models:/"):
            raise RegistryError(f"bad model URI {uri!r}: use models:/NAME@ALIAS or models:/NAME/N")
        folder = Path(uri.removeprefix("file://"))
        return LoadedModel(_read_folder(folder), "local", "local", None, uri, {})
    registry_uri = settings.mlflow_tracking_uri
    mlc = client(settings)
    alias = None
    if by_alias:
        name, alias = by_alias["name"], by_alias["alias"]
        found = version_by_alias(mlc, name, alias)
        if found is None:
            raise RegistryError(
                f"model {name!r} has no version with alias {alias!r} "
                "(run `persona model bootstrap` first?)"
            )
        mv = found
    else:
        assert by_version is not None
        name = by_version["name"]
        mv = get_version(mlc, name, by_version["version"])
    with tempfile.TemporaryDirectory() as tmp:
        try:
            # The artifact location comes from this registry's client: MLflow would resolve
            # a ``models:/`` URI with its default registry (the process environment).
            location = mlc.get_model_version_download_uri(name, str(mv.version))
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=location, dst_path=tmp, tracking_uri=registry_uri
            )
        except MlflowException as exc:
            raise RegistryError(f"cannot download {uri} (version {mv.version}): {exc}") from exc
        model = _read_folder(local)
    # Names a person gave this version (`persona review approve --name`) apply at load:
    # the API and the labels show them without a retrain.
    model = with_names(model, given_on(dict(mv.tags)))
    return LoadedModel(model, name, str(mv.version), alias, uri, dict(mv.tags))


def download_model(settings: Settings, uri: str, dst: str | Path) -> str:
    """Download a model from the settings' store into `dst`.

    `uri` is ``models:/NAME@ALIAS``, ``models:/NAME/N``, ``models:/<id>`` or an artifact
    URI. A ``models:/`` URI is resolved through the settings' client: MLflow itself resolves
    one with its process-wide default registry, whatever URI it is given.

    Returns:
        The local folder.

    Raises:
        RegistryError: Unknown model, version or alias; unreachable store.
    """
    store = settings.mlflow_tracking_uri
    mlc = client(settings)
    by_alias, by_version = _ALIAS_URI.match(uri), _VERSION_URI.match(uri)
    try:
        if by_alias:
            mv = version_by_alias(mlc, by_alias["name"], by_alias["alias"])
            if mv is None:
                raise RegistryError(f"no version of {by_alias['name']!r} has alias {uri!r}")
            uri = mlc.get_model_version_download_uri(mv.name, str(mv.version))
        elif by_version:
            uri = mlc.get_model_version_download_uri(by_version["name"], by_version["version"])
        elif uri.startswith("models:/"):
            uri = mlc.get_logged_model(uri.removeprefix("models:/")).artifact_location
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=str(dst), tracking_uri=store
        )
    except MlflowException as exc:
        raise RegistryError(f"cannot download {uri}: {exc}") from exc
    return str(local)


def given_on(tags: dict[str, str]) -> dict[str, str]:
    """Persona id -> name from ``persona_name.<id>`` tags."""
    return {k[len(NAME_TAG) :]: v for k, v in tags.items() if k.startswith(NAME_TAG)}
