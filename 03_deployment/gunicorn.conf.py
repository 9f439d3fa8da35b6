"""Gunicorn config of the persona API: `gunicorn -c 03_deployment/gunicorn.conf.py`.

The config itself is the package module `persona.serving.gunicorn_config` (so an installed
`persona serve` finds it too); this file re-exports every name of it for `make serve`,
the images and compose. See that module for the settings it reads.
"""

from persona.serving.gunicorn_config import *  # noqa: F403
