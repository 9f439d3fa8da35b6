output "bucket_name" {
  description = "Artifact bucket; put it in .env as GCS_BUCKET."
  value       = google_storage_bucket.artifacts.name
}

output "artifact_root" {
  description = "gs:// root the MLflow server proxies artifacts to (--artifacts-destination)."
  value       = "gs://${google_storage_bucket.artifacts.name}/${var.artifact_prefix}"
}

output "service_account_email" {
  description = "Service account of the MLflow server."
  value       = google_service_account.mlflow.email
}

output "pipeline_service_account_email" {
  description = "Service account of the pipeline (creates and reads objects)."
  value       = google_service_account.pipeline.email
}

output "api_service_account_email" {
  description = "Service account of the API (reads objects only)."
  value       = google_service_account.api.email
}

output "service_account_key" {
  description = "Base64 JSON key (only with create_key = true): terraform output -raw service_account_key | base64 -d > secrets/gcp-key.json"
  value       = var.create_key ? google_service_account_key.mlflow[0].private_key : ""
  sensitive   = true
}
