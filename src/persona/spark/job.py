"""The ``spark-submit`` entry point: ``spark-submit .../persona/spark/job.py label|monitor ...``.

The arguments are those of ``persona spark label|monitor`` (``--input``, ``--output``,
``--month``, ``--reference``, ``--method``, ``--jdbc``, ``--json``). Under
``spark-submit`` the master and the driver memory come from ``spark-submit`` itself
(``--master yarn`` on Dataproc), not from `SPARK_MASTER`. ``spark-submit`` merges the
driver's stderr into its stdout, so with ``--json`` the document is the last line.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """Run ``persona spark <argv>``."""
    from persona.cli import app

    app(["spark", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
