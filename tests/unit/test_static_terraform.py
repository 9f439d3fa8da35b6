"""Static checks of 05_iac: formatting and the artifact-bucket rules (no provider download)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest

IAC = Path(__file__).resolve().parents[2] / "05_iac"


def _unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, dict):
        return {_unquote(k): _unquote(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    return value


def _load(name: str) -> dict[str, Any]:
    with (IAC / name).open() as handle:
        return _unquote(hcl2.load(handle))


def _resources(kind: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for block in _load("main.tf").get("resource", []):
        found.update(block.get(kind, {}))
    return found


@pytest.fixture(scope="module")
def bucket() -> dict[str, Any]:
    buckets = _resources("google_storage_bucket")
    assert list(buckets) == ["artifacts"], buckets.keys()
    return buckets["artifacts"]


def test_expected_files_exist() -> None:
    for name in (
        "versions.tf",
        "variables.tf",
        "main.tf",
        "outputs.tf",
        "terraform.tfvars.example",
    ):
        assert (IAC / name).is_file(), name


def test_terraform_fmt_check_passes() -> None:
    terraform = shutil.which("terraform")
    assert terraform, "terraform must be on PATH for the static IaC checks"
    done = subprocess.run(
        [terraform, f"-chdir={IAC}", "fmt", "-check", "-recursive", "-diff"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_google_provider_is_pinned_to_a_major() -> None:
    versions = _load("versions.tf")["terraform"][0]
    google = versions["required_providers"][0]["google"]
    assert google["source"] == "hashicorp/google"
    assert google["version"].startswith("~> ") and google["version"].count(".") == 1


def test_bucket_is_private_uniform_and_versioned(bucket: dict[str, Any]) -> None:
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert bucket["versioning"][0]["enabled"] is True
    assert bucket["force_destroy"] is False


def test_lifecycle_rules_only_delete_noncurrent_versions(bucket: dict[str, Any]) -> None:
    rules = bucket.get("lifecycle_rule", [])
    assert rules, "expected a rule expiring noncurrent versions"
    noncurrent_keys = {"days_since_noncurrent_time", "num_newer_versions", "noncurrent_time_before"}
    for rule in rules:
        action, condition = rule["action"][0], rule["condition"][0]
        if action["type"] != "Delete":
            continue
        # A delete rule must be limited to noncurrent versions: with_state ARCHIVED, or
        # is_live = false, and a noncurrent condition; never age/created_before alone.
        archived = condition.get("with_state") == "ARCHIVED" or condition.get("is_live") is False
        assert archived, f"delete rule may hit live objects: {condition}"
        assert noncurrent_keys & set(condition), (
            f"delete rule without noncurrent condition: {condition}"
        )
        assert "age" not in condition and "created_before" not in condition


def test_service_account_has_object_roles_on_the_bucket_only() -> None:
    bindings = _resources("google_storage_bucket_iam_member")
    assert bindings, "expected a google_storage_bucket_iam_member binding"
    for binding in bindings.values():
        assert binding["bucket"] == "${google_storage_bucket.artifacts.name}"
        assert binding["role"] in {
            "roles/storage.objectAdmin",
            "roles/storage.objectCreator",
            "roles/storage.objectViewer",
        }
        assert binding["member"].startswith("serviceAccount:${google_service_account.")
    text = (IAC / "main.tf").read_text()
    for broad in ("google_project_iam", "roles/storage.admin", "roles/owner", "roles/editor"):
        assert broad not in text, f"{broad} grants more than object access on the bucket"


def test_outputs_feed_the_env_file() -> None:
    outputs: dict[str, Any] = {}
    for block in _load("outputs.tf")["output"]:
        outputs.update(block)
    assert {"bucket_name", "artifact_root", "service_account_email"} <= set(outputs)
    assert outputs["artifact_root"]["value"].startswith("gs://")
    assert outputs["service_account_key"]["sensitive"] is True


def test_every_variable_used_is_declared_and_tfvars_example_matches() -> None:
    declared: set[str] = set()
    for block in _load("variables.tf")["variable"]:
        declared |= set(block)
    import re

    used = set()
    for name in ("main.tf", "outputs.tf", "versions.tf"):
        used |= set(re.findall(r"var\.([a-z_]+)", (IAC / name).read_text()))
    assert used <= declared, used - declared
    example = (IAC / "terraform.tfvars.example").read_text()
    keys = set(re.findall(r"^#?\s*([a-z_]+)\s*=", example, flags=re.M))
    assert keys <= declared, keys - declared
    assert {"project_id", "bucket_name"} <= keys


def _roles_by_account() -> dict[str, set[str]]:
    roles: dict[str, set[str]] = {}
    for binding in _resources("google_storage_bucket_iam_member").values():
        account = binding["member"].split("google_service_account.", 1)[1].split(".", 1)[0]
        roles.setdefault(account, set()).add(binding["role"])
    return roles


def test_each_service_has_its_own_account_and_only_the_api_cannot_write() -> None:
    assert set(_resources("google_service_account")) == {"mlflow", "pipeline", "api"}
    roles = _roles_by_account()
    assert roles["api"] == {"roles/storage.objectViewer"}  # the API may only read objects
    writes = {"roles/storage.objectAdmin", "roles/storage.objectCreator"}
    assert roles["mlflow"] & writes and roles["pipeline"] & writes
    # The pipeline creates and reads; it never deletes or overwrites (objectAdmin).
    assert roles["pipeline"] == {"roles/storage.objectCreator", "roles/storage.objectViewer"}
    outputs: dict[str, Any] = {}
    for block in _load("outputs.tf")["output"]:
        outputs.update(block)
    assert {"api_service_account_email", "pipeline_service_account_email"} <= set(outputs)
