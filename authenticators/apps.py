from __future__ import annotations

from datetime import datetime

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AuthenticatorsConfig(AppConfig):
    name = "authenticators"
    verbose_name = _("Authenticators")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from authenticators.registry import registry
        from authenticators.types.password import PasswordAuth, PasswordSettingsForm, PasswordSignInForm

        registry.register(
            "password", PasswordAuth, settings_form=PasswordSettingsForm, sign_in_form=PasswordSignInForm,
            title=_("Password"), replace=True,
        )

    def portcullis_cleanup(self, now: datetime) -> dict[str, int]:
        """Asked by ``manage.py portcullis_cleanup``: delete this app's expired rows."""
        from authenticators.housekeeping import cleanup

        return cleanup(now)
