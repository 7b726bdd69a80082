from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from authenticators.models import Authenticator, BackupCode, SecondFactorState, UserAuthenticator
from authenticators.registry import registry

MASK = "********"


class AuthenticatorAdminForm(forms.ModelForm):
    """The options JSON is checked by the type's settings form; secrets are never shown back."""

    auth_type = forms.ChoiceField(label=_("type"), choices=())

    class Meta:
        model = Authenticator
        fields = ["name", "auth_type", "title", "description", "enabled", "sort_order", "options"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        auth_type_field = self.fields["auth_type"]
        assert isinstance(auth_type_field, forms.ChoiceField)
        auth_type_field.choices = registry.choices()
        auth_type = registry.get(self.instance.auth_type) if self.instance.pk else None
        if auth_type and self.instance.options:
            masked = dict(self.instance.options)
            for name in auth_type.secret_options:
                if masked.get(name):
                    masked[name] = MASK
            self.initial["options"] = masked

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        auth_type = registry.get(data.get("auth_type", ""))
        options = data.get("options")
        if auth_type is None or not isinstance(options, dict):
            if options is not None and not isinstance(options, dict):
                self.add_error("options", _("Options must be a JSON object."))
            return data
        for name in auth_type.secret_options:  # a masked secret keeps its stored value
            if options.get(name) == MASK:
                options[name] = (self.instance.options or {}).get(name, "")
        if auth_type.settings_form is not None:
            settings_form = auth_type.settings_form(data=options)
            if not settings_form.is_valid():
                for field, errors in settings_form.errors.items():
                    for error in errors:
                        self.add_error("options", f"{field}: {error}" if field != "__all__" else error)
                return data
            data["options"] = {key: value for key, value in settings_form.cleaned_data.items()}
        return data


@admin.register(Authenticator)
class AuthenticatorAdmin(admin.ModelAdmin):
    form = AuthenticatorAdminForm
    list_display = ["title", "name", "auth_type", "enabled", "sort_order"]
    list_editable = ["enabled", "sort_order"]
    list_filter = ["auth_type", "enabled"]
    search_fields = ["name", "title"]


@admin.register(UserAuthenticator)
class UserAuthenticatorAdmin(admin.ModelAdmin):
    list_display = ["user", "authenticator", "uuid", "created_at"]
    list_filter = ["authenticator"]
    search_fields = ["uuid", "user__username", "user__email"]
    raw_id_fields = ["user"]


# -- second factors (part mfa) -------------------------------------------------------------------------
class TOTPDeviceAdmin(admin.ModelAdmin):
    """Users' authenticator apps: seen and removed here, never shown (no key, no QR code: the key may
    be sealed, and an admin has no business seeing it). Users add them through the enrolment pages."""

    list_display = ["user", "name", "confirmed", "created_at", "last_used_at"]
    list_filter = ["confirmed"]
    search_fields = ["user__username", "user__email", "name"]
    raw_id_fields = ["user"]
    fields = ["user", "name", "confirmed", "created_at", "last_used_at"]
    readonly_fields = ["user", "created_at", "last_used_at"]

    def has_add_permission(self, request: Any) -> bool:
        return False


def _replace_totp_admin() -> None:
    from django_otp.plugins.otp_totp.models import TOTPDevice

    if admin.site.is_registered(TOTPDevice):
        admin.site.unregister(TOTPDevice)
    admin.site.register(TOTPDevice, TOTPDeviceAdmin)


_replace_totp_admin()


@admin.register(BackupCode)
class BackupCodeAdmin(admin.ModelAdmin):
    """Only whether each code was used; the codes themselves are not stored."""

    list_display = ["user", "created_at", "used_at"]
    search_fields = ["user__username", "user__email"]
    fields = ["user", "created_at", "used_at"]
    readonly_fields = ["user", "created_at", "used_at"]

    def has_add_permission(self, request: Any) -> bool:
        return False


@admin.register(SecondFactorState)
class SecondFactorStateAdmin(admin.ModelAdmin):
    """Consecutive failures per user and factor; clear "disabled" to enable a locked factor again."""

    list_display = ["user", "authenticator", "failures", "disabled_at", "last_used_at"]
    list_filter = ["authenticator", "disabled_at"]
    search_fields = ["user__username", "user__email"]
    fields = ["user", "authenticator", "failures", "disabled_at", "last_used_at"]
    readonly_fields = ["user", "authenticator", "last_used_at"]

    def has_add_permission(self, request: Any) -> bool:
        return False
