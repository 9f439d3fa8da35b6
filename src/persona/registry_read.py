"""Reading the model registry as the API does: the MLflow client, aliases, loading a version.

Only MLflow's client and `persona.model` (numpy): the API image has neither the training
nor the monitoring dependencies, and the API's reload thread imports this module, not
`persona.registry` (whose package imports the whole platform). `persona.registry.versions`
re-exports these names.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from persona.errors import ModelError, RegistryError
from persona.model import LoadedModel, PersonaModel, read_model_folder, with_names
from persona.settings import Settings

NAME_TAG = "persona_name."  # + persona id: a name a person gave (model and version tags)
_ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/]+)$")
_VERSION_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")


def client(settings: Settings) -> MlflowClient:
    """An `MlflowClient` on the settings' tracking and registry URI (no global state)."""
    uri = settings.mlflow_tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


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


def given_on(tags: dict[str, str]) -> dict[str, str]:
    """Persona id -> name from ``persona_name.<id>`` tags."""
    return {k[len(NAME_TAG) :]: v for k, v in tags.items() if k.startswith(NAME_TAG)}
