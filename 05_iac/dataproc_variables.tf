variable "dataproc_enabled" {
  description = "Create the Dataproc cluster of docs/dataproc.md (off: only the bucket and its account)."
  type        = bool
  default     = false
}

variable "dataproc_cluster_name" {
  description = "Name of the Dataproc cluster."
  type        = string
  default     = "persona-spark"
}

variable "dataproc_staging_bucket" {
  description = "Bucket for job files, the persona wheel, Parquet in and out and driver output (needed when dataproc_enabled)."
  type        = string
  default     = ""
}

variable "dataproc_persona_wheel" {
  description = "gs:// path of the persona wheel the nodes pip-install (needed when dataproc_enabled)."
  type        = string
  default     = ""
}

variable "dataproc_worker_count" {
  description = "Primary workers of the cluster."
  type        = number
  default     = 2
}

variable "dataproc_secondary_worker_count" {
  description = "Preemptible secondary workers (labelling is stateless and retried by Spark)."
  type        = number
  default     = 0
}

variable "dataproc_idle_delete_ttl" {
  description = "The cluster deletes itself after this long without jobs."
  type        = string
  default     = "1800s"
}
