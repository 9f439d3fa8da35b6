variable "project_id" {
  description = "GCP project that holds the artifact bucket and the service account."
  type        = string
}

variable "region" {
  description = "Default region of the google provider."
  type        = string
  default     = "europe-west1"
}

variable "bucket_name" {
  description = "Globally unique name of the MLflow artifact bucket (becomes GCS_BUCKET in .env)."
  type        = string
}

variable "bucket_location" {
  description = "Bucket location: a region (europe-west1) or a multi-region (EU)."
  type        = string
  default     = "EU"
}

variable "artifact_prefix" {
  description = "Folder inside the bucket where the MLflow server writes artifacts."
  type        = string
  default     = "mlflow"
}

variable "noncurrent_retention_days" {
  description = "Days a replaced or deleted (noncurrent) object version is kept before deletion. Live objects are never deleted by a lifecycle rule."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_retention_days >= 1
    error_message = "noncurrent_retention_days must be at least 1."
  }
}

variable "noncurrent_versions_kept" {
  description = "Noncurrent versions kept per object; older noncurrent versions are deleted."
  type        = number
  default     = 3

  validation {
    condition     = var.noncurrent_versions_kept >= 1
    error_message = "noncurrent_versions_kept must be at least 1."
  }
}

variable "service_account_id" {
  description = "Account id of the service account used by the MLflow server (reads and writes objects)."
  type        = string
  default     = "persona-mlflow"
}

variable "pipeline_service_account_id" {
  description = "Account id of the pipeline's service account (creates and reads objects)."
  type        = string
  default     = "persona-pipeline"
}

variable "api_service_account_id" {
  description = "Account id of the API's service account (reads objects only)."
  type        = string
  default     = "persona-api"
}

variable "create_key" {
  description = "Create a JSON key for the service account (for hosts without workload identity)."
  type        = bool
  default     = false
}

variable "labels" {
  description = "Labels put on the bucket."
  type        = map(string)
  default = {
    app = "personaops"
  }
}
