from __future__ import annotations

import logging
from datetime import datetime

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class IdentityConfig(AppConfig):
    name = "identity"
    verbose_name = _("Identity (OpenID provider)")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings
        from oauth2_provider import settings as dot_settings

        # checks and signals register their checks and receivers on import
        from identity import allocator, checks, middleware, sessions, signals  # noqa: F401
        from identity.defaults import OAUTH2_PROVIDER_DEFAULTS

        # Our policy becomes DOT's defaults; a project's OAUTH2_PROVIDER still wins key by key.
        dot_settings.oauth2_settings.defaults = {**dot_settings.DEFAULTS, **OAUTH2_PROVIDER_DEFAULTS}
        dot_settings.oauth2_settings.reload()
        # DOT recognises an already-hashed client secret through PASSWORD_HASHERS, so our
        # client-secret hasher must be listed there (last: it never hashes passwords).
        hasher_path = "identity.hashers.ClientSecretHasher"
        if hasher_path not in settings.PASSWORD_HASHERS:
            settings.PASSWORD_HASHERS = [*settings.PASSWORD_HASHERS, hasher_path]
        # An unreadable form body must answer 400 before CsrfViewMiddleware reads it (else a 500).
        middleware.install(settings)
        # Redis or PostgreSQL away answers 503 (never 500) in every face: its middleware comes first.
        middleware.install_unavailable(settings)
        # Signed-in sessions are recorded (the admin lists and ends them); their keys change later.
        sessions.install(settings)
        # oauthlib logs whole token responses (access, refresh and ID tokens) at DEBUG: its logger
        # stays at INFO unless the project's LOGGING sets its level (identity.logs).
        oauthlib_logger = logging.getLogger("oauthlib")
        if oauthlib_logger.level == logging.NOTSET:
            oauthlib_logger.setLevel(logging.INFO)
        # Argon2's 100 MiB stay mapped between sign-ins instead of being faulted in anew each time.
        allocator.retain_hash_memory()
        # A sign-in's last_login: Django's write, its UPDATE compiled once.
        signals.replace_update_last_login()

    def portcullis_cleanup(self, now: datetime) -> dict[str, int]:
        """Asked by ``manage.py portcullis_cleanup``: delete this app's expired rows."""
        from identity.housekeeping import cleanup

        return cleanup(now)
