"""Label and monitor a whole customer base on Spark with the champion (local mode or Dataproc).

`persona.spark` is the only place that imports pyspark (an optional extra:
``pip install -e ".[spark]"``); the core package never does. The jobs use the same model
artifact (`registry.load_model_for_serving`), the same feature order and the same decision
policy (`monitoring.decide`) as the single-machine path:

- `session.start_session(settings)`: a SparkSession on `SPARK_MASTER` (``local[2]`` here,
  YARN on Dataproc), started within `SPARK_START_TIMEOUT_S`.
- `label.label_dataset(...)`: Parquet in, labels with lineage out (partitioned Parquet, and
  optionally `persona_assignments` over JDBC).
- `monitor.monitor_dataset(...)`: the monitoring statistics of a month against its reference
  months, computed by Spark aggregations, and the verdict of `monitoring.decide`.
- `job`: the ``spark-submit`` entry point (``python -m persona.spark.job label|monitor``).
"""
