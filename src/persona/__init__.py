"""PersonaOps: label survey respondents with marketing personas, watch for drift, retrain."""

__version__ = "0.1.0"
