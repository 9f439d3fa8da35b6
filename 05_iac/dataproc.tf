# Optional Dataproc cluster for `persona spark label|monitor` (docs/dataproc.md). Off by
# default: with dataproc_enabled = false nothing here is planned, so the bucket and its
# service account plan exactly as before.

module "dataproc" {
  source = "./modules/dataproc"
  count  = var.dataproc_enabled ? 1 : 0

  project_id             = var.project_id
  region                 = var.region
  cluster_name           = var.dataproc_cluster_name
  service_account_email  = google_service_account.mlflow.email
  staging_bucket         = var.dataproc_staging_bucket
  persona_wheel          = var.dataproc_persona_wheel
  worker_count           = var.dataproc_worker_count
  secondary_worker_count = var.dataproc_secondary_worker_count
  idle_delete_ttl        = var.dataproc_idle_delete_ttl
}

# The nodes run as the root module's account: it needs the Dataproc worker role and objects
# in the staging/data bucket (job files, wheel, Parquet in and out, through the GCS connector).
resource "google_project_iam_member" "dataproc_worker" {
  count   = var.dataproc_enabled ? 1 : 0
  project = var.project_id
  role    = "roles/dataproc.worker"
  member  = "serviceAccount:${google_service_account.mlflow.email}"
}

resource "google_storage_bucket_iam_member" "dataproc_data" {
  count  = var.dataproc_enabled ? 1 : 0
  bucket = var.dataproc_staging_bucket
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${google_service_account.mlflow.email}"

  lifecycle {
    precondition {
      condition     = var.dataproc_staging_bucket != "" && startswith(var.dataproc_persona_wheel, "gs://")
      error_message = "dataproc_enabled = true needs dataproc_staging_bucket and a gs:// dataproc_persona_wheel."
    }
  }
}

output "dataproc_cluster_name" {
  description = "Cluster for gcloud dataproc jobs submit pyspark --cluster (empty when disabled)."
  value       = var.dataproc_enabled ? module.dataproc[0].cluster_name : ""
}

output "dataproc_region" {
  description = "Region of the Dataproc cluster (empty when disabled)."
  value       = var.dataproc_enabled ? module.dataproc[0].region : ""
}
