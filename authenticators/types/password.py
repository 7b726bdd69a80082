"""The ``password`` type: an e-mail address or username (one case-insensitive namespace), and a password."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.hashers import make_password
from django.utils.translation import gettext_lazy as _

from authenticators.base import AuthError, FormAuth
from identity.identifiers import EMAIL, USERNAME, AmbiguousIdentifier, find_user


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
        """The one active account with this e-mail or username (as the options allow), or None.

        Raises ``AmbiguousIdentifier`` when several accounts hold it (identity/identifiers.py)."""
        options = {"allow_email": True, "allow_username": True, **self.options}
        kinds = [kind for kind, allowed in ((EMAIL, options["allow_email"]), (USERNAME, options["allow_username"]))
                 if allowed]
        user = find_user(identifier, kinds)
        return user if user is not None and user.is_active else None

    def validate(self, data: dict[str, Any]) -> Any:
        identifier = str(data.get("identifier") or "")
        password = data.get("password")
        if not identifier or not isinstance(password, str) or not password:
            raise AuthError("invalid_input")
        try:
            user = self.find_user_by_identifier(identifier)
        except AmbiguousIdentifier:
            make_password(password)  # the same answer and hashing work as for an unknown account
            raise AuthError("invalid_credentials", reason="ambiguous_identifier") from None
        if user is None:
            make_password(password)  # the same hashing work as for a real account
            raise AuthError("invalid_credentials")
        if not user.check_password(password):
            raise AuthError("invalid_credentials")
        return user
