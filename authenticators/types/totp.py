"""The ``totp`` second factor: an authenticator app (RFC 6238) on django-otp's ``TOTPDevice``.

Verified against the user's own confirmed device (never ``match_token`` across devices), inside a
transaction with the device row locked (``select_for_update``): a code is accepted once (its time
step must be after ``last_t``, written in the same transaction), within at most one step of now, and
consecutive failures disable the factor (``authenticators.factors``). A user has one TOTP device.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from authenticators import factors
from authenticators.base import AuthError, SecondFactorAuth


class CodeForm(forms.Form):
    code = forms.CharField(
        label=_("Code from your authenticator app"), max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autocapitalize": "none",
                                      "spellcheck": "false"}),
    )


def confirmed_devices(user: Any) -> Any:
    """``user``'s confirmed TOTP devices (``user``: an account, or its primary key, which may be an
    expression such as ``OuterRef("user_id")``)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    return TOTPDevice.objects.filter(user_id=getattr(user, "pk", user), confirmed=True)


def device_of(user: Any, *, lock: bool = False) -> Any | None:
    """The user's confirmed TOTP device."""
    devices = confirmed_devices(user)
    return (devices.select_for_update() if lock else devices).order_by("pk").first()


class TotpAuth(SecondFactorAuth):
    enrolment_by_pk = True  # enrolment(user) filters on the user alone

    def amr(self) -> list[str]:
        return ["otp"]

    def enrolment(self, user: Any) -> Any:
        return confirmed_devices(user)

    @classmethod
    def enrolment_by(cls, user_pk: Any) -> Any:
        return confirmed_devices(user_pk)

    def verify_for(self, user: Any, data: dict[str, Any]) -> None:
        wanted = data.get("device")
        failure = ""
        with factors.checking(user, self.authenticator) as check:
            device = device_of(user, lock=True)
            if check.disabled:
                failure = "factor_disabled"
            elif device is None or (wanted not in (None, "") and str(wanted) != str(device.pk)):
                failure = "invalid_code"
            else:
                try:
                    key = factors.unseal(device.key)
                except ValueError:
                    key = b""
                counter = factors.match_totp(key, data.get("code"), last_t=device.last_t, step=device.step,
                                             t0=device.t0, digits=device.digits, tolerance=device.tolerance) if key else None
                if counter is None:
                    failure = "invalid_code"
                else:
                    device.last_t, device.last_used_at = counter, timezone.now()
                    device.save(update_fields=["last_t", "last_used_at"])
                    check.ok = True
        if failure:
            raise AuthError(failure, reason="totp_replayed_or_wrong" if failure == "invalid_code" else failure)
