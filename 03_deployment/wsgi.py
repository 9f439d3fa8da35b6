"""WSGI entry point: `gunicorn -c 03_deployment/gunicorn.conf.py` (wsgi_app = "wsgi:app")."""

from persona.serving.app import create_app
from persona.settings import get_settings

app = create_app(get_settings())
