# An ephemeral Dataproc cluster for the Spark labelling and monitoring jobs
# (`persona spark label|monitor` through `spark-submit`). It deletes itself after
# `idle_delete_ttl` without jobs, runs as the service account of the root module (05_iac),
# has no public IPs, and installs the `persona` wheel (extra "spark" not needed: Dataproc
# ships Spark and Java) on every node at start with the pip-install initialization action.
# Optional: checked with `terraform fmt` and parsed by the unit tests, never applied by CI.

resource "google_dataproc_cluster" "spark" {
  name    = var.cluster_name
  project = var.project_id
  region  = var.region
  labels  = var.labels

  cluster_config {
    staging_bucket = var.staging_bucket

    gce_cluster_config {
      service_account        = var.service_account_email
      service_account_scopes = ["cloud-platform"]
      internal_ip_only       = true
      subnetwork             = var.subnetwork
      metadata = {
        PIP_PACKAGES = var.persona_wheel
      }
    }

    master_config {
      num_instances = 1
      machine_type  = var.master_machine_type
      disk_config {
        boot_disk_size_gb = 50
      }
    }

    worker_config {
      num_instances = var.worker_count
      machine_type  = var.worker_machine_type
      disk_config {
        boot_disk_size_gb = 100
      }
    }

    preemptible_worker_config {
      num_instances = var.secondary_worker_count
    }

    software_config {
      image_version = var.image_version
      override_properties = {
        "spark:spark.sql.execution.arrow.pyspark.enabled" = "true"
        "spark:spark.sql.sources.partitionOverwriteMode"  = "dynamic"
      }
    }

    initialization_action {
      script      = "gs://goog-dataproc-initialization-actions-${var.region}/python/pip-install.sh"
      timeout_sec = 600
    }

    lifecycle_config {
      idle_delete_ttl = var.idle_delete_ttl
    }
  }
}
