"""What the standalone server checks before it serves a request."""

from __future__ import annotations

from django.core import checks
from django.core.exceptions import ImproperlyConfigured


def refuse_to_serve_with_errors() -> None:
    """Run Django's system checks as ``manage.py runserver`` does, and refuse to start on an error.

    gunicorn, uvicorn and other servers import ``config.wsgi`` / ``config.asgi`` without running
    the checks, so a server missing ``ISSUER`` with ``DEBUG`` off (``identity.E002``) would start
    and take its issuer from each request's Host header. Warnings are left to ``manage.py check``.
    """
    errors = [message for message in checks.run_checks() if message.is_serious() and not message.is_silenced()]
    if errors:
        raise ImproperlyConfigured("System check found errors:\n" + "\n".join(str(error) for error in errors))
