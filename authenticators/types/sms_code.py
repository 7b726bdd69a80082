"""The ``sms-code`` type: a one-time code sent by SMS to the account's phone number (passwordless)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from authenticators.base import AuthError
from authenticators.types.codes import CodeSettingsForm, SentCodeAuth
from authenticators.types.email_code import mark_verified
from identity import delivery
from identity.identifiers import BAD_PHONE, PHONE, AmbiguousIdentifier, find_user, identifiers_of
from identity.phones import to_e164


class SmsCodeSettingsForm(CodeSettingsForm):
    pass


class PhoneNumberForm(forms.Form):
    """The first step: the phone number, in international format (normalised to E.164)."""

    phone_number = forms.CharField(
        label=_("Phone number"), max_length=40, help_text=_("In international format, e.g. +15551234567."),
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "tel", "inputmode": "tel"}),
    )

    def clean_phone_number(self) -> str:
        try:
            return to_e164(self.cleaned_data["phone_number"])
        except ValueError:
            raise forms.ValidationError(BAD_PHONE) from None


class SmsCodeAuth(SentCodeAuth):
    """Send a code to a phone number; the code signs in to the account holding that number."""

    channel = "sms"

    def amr(self) -> list[str]:
        return ["sms", "otp"]

    def destination(self, data: dict[str, Any]) -> str:
        try:
            return to_e164(str(data.get("phone_number") or ""))
        except ValueError:
            raise AuthError("invalid_input") from None

    def user_for(self, destination: str) -> Any | None:
        try:
            user = find_user(destination, [PHONE])
        except AmbiguousIdentifier:
            return None
        return user if user is not None and user.is_active else None

    def deliver(self, destination: str, code: str, *, user: Any, timeout: int) -> None:
        # A sign-up's code goes to the address typed (no account has it yet).
        to = identifiers_of(user)[PHONE] if user is not None else destination
        self.delivered(delivery.send_sms, to, "sms_code", self.message_context(code, timeout))

    def validate(self, data: dict[str, Any]) -> Any:
        user = super().validate(data)
        mark_verified(user, "phone_number_verified")
        return user
