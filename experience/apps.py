from __future__ import annotations

from datetime import datetime

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

CHECKS = {"PORTCULLIS_TOKEN_CHECK": "experience.access_control.token_check",
          "PORTCULLIS_AUTHORIZE_CHECK": "experience.access_control.authorize_check"}


class ExperienceConfig(AppConfig):
    name = "experience"
    verbose_name = _("Sign-in experience")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        from experience import checks, middleware  # noqa: F401  registers the system checks

        # The device cookie of new-sign-in notices (experience.notifications) needs its middleware.
        if middleware.PATH not in settings.MIDDLEWARE:
            settings.MIDDLEWARE = [*settings.MIDDLEWARE, middleware.PATH]
        # The access rules also apply where the provider issues codes and tokens (identity's seams),
        # unless the project chose its own checks (or "" for none).
        for name, path in CHECKS.items():
            if not hasattr(settings, name):
                setattr(settings, name, path)

    def portcullis_cleanup(self, now: datetime) -> dict[str, int]:
        """Asked by ``manage.py portcullis_cleanup``: delete this app's expired rows."""
        from experience.housekeeping import cleanup, cleanup_captchas

        return {**cleanup(now), **cleanup_captchas(now)}
