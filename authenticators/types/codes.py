"""What the one-time code types (``email-code``, ``sms-code``) share: their settings form, the code
form of their second step, and the delivery of the code through ``identity.delivery``."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.utils.translation import gettext_lazy as _

from authenticators.base import AuthError, CodeAuth
from identity import delivery
from identity.applications import load_application


class CodeSettingsForm(forms.Form):
    """Each empty field means the site's setting (``PORTCULLIS_CODE_TTL``, ...)."""

    code_ttl = forms.IntegerField(label=_("Code lifetime (seconds)"), required=False, min_value=60, max_value=3600)
    max_attempts = forms.IntegerField(label=_("Attempts per code"), required=False, min_value=1, max_value=10)
    cooldown = forms.IntegerField(label=_("Seconds between two codes to one address or account"), required=False,
                                  min_value=1, max_value=3600)
    daily_limit = forms.IntegerField(label=_("Codes per address and day"), required=False, min_value=1, max_value=100)


class CodeForm(forms.Form):
    """The second step: the code that was sent, and the handle the first step answered."""

    code_id = forms.CharField(max_length=64, widget=forms.HiddenInput)
    code = forms.CharField(
        label=_("Code"), max_length=20,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "pattern": "[0-9 ]*",
                                      "autocapitalize": "none", "spellcheck": "false"}),
    )

    def clean_code(self) -> str:
        code = "".join(str(self.cleaned_data["code"]).split())
        if not code.isdigit() or not code.isascii():
            raise forms.ValidationError(_("Enter the code of digits from the message."))
        return code


def brand_context(policy: Any, request: Any) -> dict[str, Any]:
    """A message's branding as the application's experience gives it (``policy``, an
    ``experience.policy.Policy``, or None): name, logo (an absolute URL: mail clients load it from
    this site) and support address."""
    application = load_application(policy.client_id) if getattr(policy, "client_id", "") else None
    brand = getattr(policy, "branding", None)
    if brand is None:
        return {"brand_name": application.name if application else "Portcullis", "brand_logo_url": "",
                "brand_support_email": ""}
    return {"brand_name": brand.name_for(application), "brand_logo_url": delivery.absolute_url(brand.logo_url, request),
            "brand_support_email": brand.support_email}


class SentCodeAuth(CodeAuth):
    """A code type that delivers through ``identity.delivery`` (a type says how: :meth:`deliver`)."""

    def amr(self) -> list[str]:
        return ["otp"]

    def message_context(self, code: str, timeout: int) -> dict[str, Any]:
        return {"code": code, "minutes": max(1, timeout // 60), **brand_context(self.policy, self.request),
                "host": (urlsplit("//" + self.request.get_host()).hostname or "") if self.request is not None else ""}

    @staticmethod
    def delivered(send: Any, *args: Any, **kwargs: Any) -> None:
        """``send(*args, **kwargs)``; a failed delivery as ``AuthError("delivery_failed")``."""
        try:
            send(*args, **kwargs)
        except delivery.DeliveryError:
            raise AuthError("delivery_failed") from None
