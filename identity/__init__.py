"""Portcullis's OpenID Connect provider app; ``__version__`` is the version of the whole
django-portcullis distribution (pyproject.toml reads it from here)."""

__version__ = "0.1.0"
