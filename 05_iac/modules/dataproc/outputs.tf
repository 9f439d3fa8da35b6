output "cluster_name" {
  description = "Name to pass to gcloud dataproc jobs submit pyspark --cluster."
  value       = google_dataproc_cluster.spark.name
}

output "region" {
  description = "Region of the cluster."
  value       = google_dataproc_cluster.spark.region
}
