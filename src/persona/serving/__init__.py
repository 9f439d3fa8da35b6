"""REST serving: Flask app factory, model holder with hot reload, gunicorn helpers.

Import `persona.serving.app.create_app` directly. This package file imports nothing, so
the gunicorn config can import `persona.serving.gunicorn_conf` (and export
PROMETHEUS_MULTIPROC_DIR) before prometheus_client is imported anywhere.
"""
