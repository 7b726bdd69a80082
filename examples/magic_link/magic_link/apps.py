from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MagicLinkConfig(AppConfig):
    """Registers the ``magic-link`` type: an admin then adds an authenticator of that type."""

    name = "magic_link"
    verbose_name = _("Magic link")

    def ready(self) -> None:
        from authenticators.registry import registry
        from authenticators.types.codes import CodeForm
        from authenticators.types.email_code import EmailAddressForm
        from magic_link.auth import MagicLinkAuth, MagicLinkSettingsForm

        registry.register(
            "magic-link", MagicLinkAuth,
            settings_form=MagicLinkSettingsForm,  # the admin's fields for Authenticator.options
            send_form=EmailAddressForm,           # the tab's first step: where to send the link
            sign_in_form=CodeForm,                # its second step: the code, for a link opened elsewhere
            title=_("Magic link"),
            replace=True,                          # ready() may run again (tests re-populate the apps)
        )
