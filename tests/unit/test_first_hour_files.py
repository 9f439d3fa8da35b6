"""Files a newcomer reads first: migration guide, Terraform lock, make targets."""

from __future__ import annotations

import subprocess

from tests.conftest import REPO


def test_terraform_lock_is_not_ignored_and_docs_say_commit_it() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "05_iac/.terraform.lock.hcl"], cwd=REPO, check=False
    )
    assert ignored.returncode == 1  # 1 = not ignored
    deployment = (REPO / "docs" / "deployment.md").read_text(encoding="utf-8")
    assert "git add 05_iac/.terraform.lock.hcl" in deployment
    assert "Commit the dependency lock" in deployment


def test_migration_guide_maps_every_piece_of_the_original() -> None:
    text = (REPO / "docs" / "migration.md").read_text(encoding="utf-8")
    for piece in (
        # notebooks
        "create_data.ipynb", "ingest.ipynb", "experiment_tracking.ipynb", "predict.ipynb",
        "gcp_upload_model.ipynb", "gcp_download_model.ipynb", "load_latest_model.ipynb",
        "drift_monitoring.ipynb", "telegram_alert.ipynb",
        # make targets
        "make create_data", "make tf_create", "make tf_destroy", "make black", "make gunicorn",
        "make docker_stack", "make mlflowserver",
        # env variables
        "GOOGLE_CLOUD_PROJECT", "GCS_BUCKET_NAME", "POSTGRES_DBNAME", "POSTGRES_HOST",
        # REST contract and model stages
        "POST /compat/predict", '{"labels": [0, 0, 2]}', "Production", "Staging", "@champion",
    ):  # fmt: skip
        assert piece in text, piece
    assert "docs/migration.md" in (REPO / "README.md").read_text(encoding="utf-8")


def test_mlflow_ui_port_is_a_setting() -> None:
    dry = subprocess.run(
        ["make", "-n", "mlflow-ui"], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert '--port "${MLFLOW_PORT:-5000}"' in dry.stdout and "--host 127.0.0.1" in dry.stdout
