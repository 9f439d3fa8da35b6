"""The governance receiver for gunicorn: ``persona.governance.wsgi:app`` (one worker)."""

from persona.governance.receiver import create_receiver
from persona.settings import get_settings

app = create_receiver(get_settings())
