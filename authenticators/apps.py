from __future__ import annotations

from datetime import datetime

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AuthenticatorsConfig(AppConfig):
    name = "authenticators"
    verbose_name = _("Authenticators")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from authenticators import checks  # noqa: F401  registers the system checks
        from authenticators.registry import registry
        from authenticators.types.password import PasswordAuth, PasswordSettingsForm, PasswordSignInForm

        registry.register(
            "password", PasswordAuth, settings_form=PasswordSettingsForm, sign_in_form=PasswordSignInForm,
            title=_("Password"), replace=True,
        )
        # Second factors (part mfa): auth_type == SPEC's MFA factor name.
        from authenticators.types.backup_code import BackupCodeAuth, BackupCodeForm
        from authenticators.types.email_code import EmailCodeAuth, EmailCodeForm
        from authenticators.types.totp import CodeForm, TotpAuth

        registry.register("totp", TotpAuth, sign_in_form=CodeForm, title=_("Authenticator app"), replace=True)
        registry.register("backup_code", BackupCodeAuth, sign_in_form=BackupCodeForm, title=_("Backup code"),
                          replace=True)
        registry.register("email_code", EmailCodeAuth, sign_in_form=EmailCodeForm, title=_("Code by e-mail"),
                          replace=True)

    def portcullis_cleanup(self, now: datetime) -> dict[str, int]:
        """Asked by ``manage.py portcullis_cleanup``: delete this app's expired rows."""
        from authenticators.housekeeping import cleanup

        return cleanup(now)
