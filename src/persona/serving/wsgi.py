"""WSGI entry point of the gunicorn config (``wsgi_app = "persona.serving.wsgi:app"``).

Importing this module builds the app from the process settings; only gunicorn workers
import it.
"""

from persona.serving.app import create_app
from persona.settings import get_settings

app = create_app(get_settings())
