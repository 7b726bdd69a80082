from __future__ import annotations

from datetime import datetime
from typing import Any

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AuthenticatorsConfig(AppConfig):
    name = "authenticators"
    verbose_name = _("Authenticators")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from authenticators import checks  # noqa: F401  registers the system checks
        from authenticators.base import enrolment_facts
        from identity.identifiers import ask_with_account

        ask_with_account(enrolment_facts)  # a sign-in's look-up of the account asks its second factors too
        from authenticators.registry import registry
        from authenticators.types.password import PasswordAuth, PasswordSettingsForm, PasswordSignInForm

        registry.register(
            "password", PasswordAuth, settings_form=PasswordSettingsForm, sign_in_form=PasswordSignInForm,
            title=_("Password"), replace=True,
        )
        # Second factors (part mfa): auth_type == SPEC's MFA factor name.
        from authenticators.types.backup_code import BackupCodeAuth, BackupCodeForm
        from authenticators.types.email_factor import EmailFactorAuth, EmailFactorForm
        from authenticators.types.totp import CodeForm as TotpForm
        from authenticators.types.totp import TotpAuth

        registry.register("totp", TotpAuth, sign_in_form=TotpForm, title=_("Authenticator app"), replace=True)
        registry.register("backup_code", BackupCodeAuth, sign_in_form=BackupCodeForm, title=_("Backup code"),
                          replace=True)
        registry.register("email_code", EmailFactorAuth, sign_in_form=EmailFactorForm, title=_("Code by e-mail"),
                          replace=True)
        self.register_code_types(registry)
        from authenticators.types.oidc import OidcAuth, OidcSettingsForm

        registry.register("oidc", OidcAuth, settings_form=OidcSettingsForm, title=_("OpenID Connect"),
                          secret_options=("client_secret",), replace=True)

    @staticmethod
    def register_code_types(registry: Any) -> None:
        """``email-code`` and ``sms-code``: the code form signs in, the send form asks the address."""
        from authenticators.types.codes import CodeForm
        from authenticators.types.email_code import EmailAddressForm, EmailCodeAuth, EmailCodeSettingsForm
        from authenticators.types.sms_code import PhoneNumberForm, SmsCodeAuth, SmsCodeSettingsForm

        registry.register("email-code", EmailCodeAuth, settings_form=EmailCodeSettingsForm, sign_in_form=CodeForm,
                          send_form=EmailAddressForm, title=_("E-mail code"), replace=True)
        registry.register("sms-code", SmsCodeAuth, settings_form=SmsCodeSettingsForm, sign_in_form=CodeForm,
                          send_form=PhoneNumberForm, title=_("SMS code"), replace=True)

    def portcullis_cleanup(self, now: datetime) -> dict[str, int]:
        """Asked by ``manage.py portcullis_cleanup``: delete this app's expired rows."""
        from authenticators.housekeeping import cleanup

        return cleanup(now)
