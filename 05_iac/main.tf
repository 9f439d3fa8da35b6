# MLflow artifact storage for PersonaOps: one private, versioned bucket and one service
# account per service, each bound on that bucket only (docs/security.md):
#   mlflow    reads and writes objects (the tracking server proxies every artifact)
#   pipeline  creates and reads objects (the cycle's jobs), never deletes or overwrites
#   api       reads objects, nothing else

resource "google_storage_bucket" "artifacts" {
  name                        = var.bucket_name
  location                    = var.bucket_location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = var.labels

  versioning {
    enabled = true
  }

  # Only NONCURRENT versions (overwritten or deleted objects) are ever removed. There is
  # deliberately no rule on live objects: registered model artifacts must never expire.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      num_newer_versions = var.noncurrent_versions_kept
      with_state         = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_service_account" "mlflow" {
  account_id   = var.service_account_id
  display_name = "PersonaOps MLflow artifacts"
  description  = "Reads and writes MLflow artifacts in ${var.bucket_name} (object-level access on that bucket only)."
}

# Object-level role bound on the bucket itself (not the project): the account can create,
# read, overwrite and delete objects in this bucket and nothing else.
resource "google_storage_bucket_iam_member" "mlflow_objects" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${google_service_account.mlflow.email}"
}

resource "google_service_account" "pipeline" {
  account_id   = var.pipeline_service_account_id
  display_name = "PersonaOps pipeline"
  description  = "Creates and reads objects in ${var.bucket_name} (no delete, no overwrite)."
}

resource "google_storage_bucket_iam_member" "pipeline_create" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectCreator"
  member = "serviceAccount:${google_service_account.pipeline.email}"
}

resource "google_storage_bucket_iam_member" "pipeline_read" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.pipeline.email}"
}

# The internet-facing API may only read objects.
resource "google_service_account" "api" {
  account_id   = var.api_service_account_id
  display_name = "PersonaOps API"
  description  = "Reads objects in ${var.bucket_name}; writes nothing."
}

resource "google_storage_bucket_iam_member" "api_read" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.api.email}"
}

resource "google_service_account_key" "mlflow" {
  count              = var.create_key ? 1 : 0
  service_account_id = google_service_account.mlflow.name
}
