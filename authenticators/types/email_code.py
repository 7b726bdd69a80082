"""The ``email-code`` type: a one-time code sent to the account's e-mail address (passwordless)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from authenticators.base import AuthError
from authenticators.types.codes import CodeSettingsForm, SentCodeAuth
from identity import delivery
from identity.identifiers import EMAIL, AmbiguousIdentifier, comparison_key, find_user, identifiers_of


class EmailCodeSettingsForm(CodeSettingsForm):
    notify_unknown = forms.BooleanField(
        label=_("Tell an address without an account that no account exists"), required=False, initial=False,
        help_text=_("Off: nothing is sent to such an address. The page answers the same either way."),
    )


class EmailAddressForm(forms.Form):
    """The first step: where to send the code."""

    email = forms.EmailField(
        label=_("E-mail"), max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autocapitalize": "none", "spellcheck": "false"}),
    )


class EmailCodeAuth(SentCodeAuth):
    """Send a code to an e-mail address; the code signs in to the account holding that address."""

    def destination(self, data: dict[str, Any]) -> str:
        email = data.get("email")
        if not isinstance(email, str) or not email.strip() or len(email) > 254:
            raise AuthError("invalid_input")
        try:
            forms.EmailField().clean(email)
        except forms.ValidationError:
            raise AuthError("invalid_input") from None
        # The comparison key: ``Alice@…`` and ``alice@…`` are one address for the cool-down too.
        return comparison_key(EMAIL, email)

    def user_for(self, destination: str) -> Any | None:
        try:
            user = find_user(destination, [EMAIL])
        except AmbiguousIdentifier:
            return None  # several legacy accounts: nobody (the same answer as an unknown address)
        return user if user is not None and user.is_active else None

    def deliver(self, destination: str, code: str, *, user: Any, timeout: int) -> None:
        # To the account's own address, never the spelling typed: a variant that only compares
        # equal (``straße`` / ``strasse``) may be someone else's mailbox.
        # A sign-up's code goes to the address typed (no account has it yet).
        to = identifiers_of(user)[EMAIL] if user is not None else destination
        self.delivered(delivery.send_email, to, "sign_in_code", self.message_context(code, timeout))

    def deliver_unknown(self, destination: str, *, timeout: int) -> None:
        if self.options.get("notify_unknown"):
            self.delivered(delivery.send_email, destination, "unknown_account", self.message_context("", timeout))

    def validate(self, data: dict[str, Any]) -> Any:
        user = super().validate(data)
        mark_verified(user, "email_verified")  # the code proved the address is theirs
        return user


def mark_verified(user: Any, flag: str) -> None:
    from identity.models import Profile

    Profile.objects.filter(user=user, **{flag: False}).update(**{flag: True})
