"""The ``password`` type: an e-mail (case-insensitive) or username, and a password."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.utils.translation import gettext_lazy as _

from authenticators.base import AuthError, FormAuth


class PasswordSettingsForm(forms.Form):
    allow_email = forms.BooleanField(label=_("Sign in with e-mail"), required=False, initial=True)
    allow_username = forms.BooleanField(label=_("Sign in with username"), required=False, initial=True)

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if not data.get("allow_email") and not data.get("allow_username"):
            raise forms.ValidationError(_("Allow at least one identifier."))
        return data


class PasswordSignInForm(forms.Form):
    identifier = forms.CharField(
        label=_("E-mail or username"), max_length=254,
        widget=forms.TextInput(attrs={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"}),
    )
    password = forms.CharField(
        label=_("Password"), max_length=4096, strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


class PasswordAuth(FormAuth):
    """Checks a password. Whatever the outcome, exactly one password hash is computed."""

    def amr(self) -> list[str]:
        return ["pwd"]

    def find_user_by_identifier(self, identifier: str) -> Any | None:
        user_model = get_user_model()
        identifier = identifier.strip()
        if not identifier:
            return None
        options = {"allow_email": True, "allow_username": True, **self.options}
        users = user_model._default_manager.filter(is_active=True)
        if "@" in identifier and options["allow_email"]:
            email_field = user_model.get_email_field_name()
            user = users.filter(**{f"{email_field}__iexact": identifier}).order_by("pk").first()
            if user is not None:
                return user
        if options["allow_username"]:
            return users.filter(**{f"{user_model.USERNAME_FIELD}__iexact": identifier}).order_by("pk").first()
        return None

    def validate(self, data: dict[str, Any]) -> Any:
        identifier = str(data.get("identifier") or "")
        password = data.get("password")
        if not identifier or not isinstance(password, str) or not password:
            raise AuthError("invalid_input")
        user = self.find_user_by_identifier(identifier)
        if user is None:
            make_password(password)  # the same hashing work as for a real account
            raise AuthError("invalid_credentials")
        if not user.check_password(password):
            raise AuthError("invalid_credentials")
        return user
