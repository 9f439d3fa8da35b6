variable "project_id" {
  description = "GCP project of the cluster."
  type        = string
}

variable "region" {
  description = "Dataproc region (the data bucket's region avoids egress)."
  type        = string
  default     = "europe-west1"
}

variable "cluster_name" {
  description = "Cluster name (one per run, e.g. persona-spark-2025-04)."
  type        = string
  default     = "persona-spark"
}

variable "service_account_email" {
  description = "Service account the nodes run as: the root module's service_account_email output (needs roles/dataproc.worker and object access on the data bucket)."
  type        = string
}

variable "staging_bucket" {
  description = "Bucket for job staging files and driver output."
  type        = string
}

variable "subnetwork" {
  description = "Subnetwork with Private Google Access (the nodes have internal IPs only)."
  type        = string
  default     = "default"
}

variable "persona_wheel" {
  description = "PIP_PACKAGES of the pip-install initialization action, e.g. gs://bucket/wheels/persona-0.1.0-py3-none-any.whl."
  type        = string
}

variable "image_version" {
  description = "Dataproc image (Spark 3.5+, Python 3.11)."
  type        = string
  default     = "2.2-debian12"
}

variable "master_machine_type" {
  description = "Machine type of the master."
  type        = string
  default     = "n2-standard-4"
}

variable "worker_machine_type" {
  description = "Machine type of the primary workers."
  type        = string
  default     = "n2-standard-8"
}

variable "worker_count" {
  description = "Primary workers."
  type        = number
  default     = 2
}

variable "secondary_worker_count" {
  description = "Preemptible secondary workers (labelling is stateless and retried by Spark)."
  type        = number
  default     = 0
}

variable "idle_delete_ttl" {
  description = "The cluster deletes itself after this long without jobs."
  type        = string
  default     = "1800s"
}

variable "labels" {
  description = "Labels on the cluster."
  type        = map(string)
  default     = { app = "persona", role = "spark" }
}
