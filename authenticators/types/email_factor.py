"""The ``email_code`` second factor: a one-time code sent to the user's own verified e-mail.

The code itself is :class:`~authenticators.base.CodeAuth`'s (6 digits from ``secrets``, stored as an
HMAC in ``OneTimeCode``, bound to the interaction, expiry, 5 attempts, cool-down, single use under
a row lock): an inner code type whose only address is the signed-in user's e-mail does it.

E-mail is not a strong factor (NIST SP 800-63B): it is offered only beside another second factor
the user has (an authenticator app, backup codes), never alone, so a user counts as enrolled only
when they have a verified e-mail and another enrolled factor the policy allows.
"""

from __future__ import annotations

import importlib
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from authenticators import factors
from authenticators.base import AuthError, CodeAuth, SecondFactorAuth, SentCode, enrolled_each
from authenticators.types.codes import brand_context

MESSAGE_TEMPLATE = "authenticators/email/second_factor_code"


class EmailFactorForm(forms.Form):
    code = forms.CharField(
        label=_("Code from the e-mail"), max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autocapitalize": "none",
                                      "spellcheck": "false"}),
    )


def verified_email(user: Any) -> str:
    """The user's e-mail when it is verified, else ""."""
    from identity.models import Profile

    email = (getattr(user, "email", "") or "").strip()
    if not email or not Profile.objects.filter(user=user, email_verified=True).exists():
        return ""
    return email


def send_email(to: str, code: str, timeout: int, brand: dict[str, Any] | None = None) -> None:
    """The one place this type sends mail: through ``identity.delivery.send_email`` once it exists
    (part codes), else Django's mail with the same templates. ``brand``: the application's name
    (``codes.brand_context``)."""
    context = {"code": code, "minutes": max(1, timeout // 60), **(brand or {})}
    delivery: Any
    try:
        delivery = importlib.import_module("identity.delivery")
    except ImportError:
        delivery = None
    if delivery is not None and hasattr(delivery, "send_email"):
        delivery.send_email(None, to, MESSAGE_TEMPLATE, context)
        return
    from django.core.mail import send_mail
    from django.template.loader import render_to_string

    subject = " ".join(render_to_string(f"{MESSAGE_TEMPLATE}_subject.txt", context).split())
    send_mail(subject, render_to_string(f"{MESSAGE_TEMPLATE}_message.txt", context), None, [to])


class _UsersEmailCode(CodeAuth):
    """CodeAuth with one address: the verified e-mail of the user being checked."""

    purpose = "second_factor"
    account: Any = None

    def destination(self, data: dict[str, Any]) -> str:
        email = verified_email(self.account) if self.account is not None else ""
        if not email:
            raise AuthError("disabled")
        return email.lower()

    def user_for(self, destination: str) -> Any | None:
        return self.account

    def deliver(self, destination: str, code: str, *, user: Any, timeout: int) -> None:
        send_email(verified_email(user), code, timeout, brand_context(self.policy, self.request))


class EmailFactorAuth(SecondFactorAuth):
    beside_others = True

    def amr(self) -> list[str]:
        return ["otp"]

    def _codes(self, user: Any) -> _UsersEmailCode:
        codes = _UsersEmailCode(self.authenticator, self.request, policy=self.policy, binding=self.binding)
        codes.account = user
        return codes

    def other_factors(self) -> list[Any]:
        """The other second-factor authenticators the policy allows (all enabled ones without one)."""
        if self.policy is not None:
            candidates = self.policy.second_factors()
        else:
            from authenticators.models import Authenticator

            candidates = [a for a in Authenticator.objects.enabled() if a.type is not None and a.type.kind == "second_factor"]
        return [a for a in candidates if a.pk != self.authenticator.pk and a.auth_type != self.authenticator.auth_type]

    def enrolled(self, user: Any) -> bool:
        if not verified_email(user):
            return False
        others = [auth for authenticator in self.other_factors()
                  if isinstance(auth := authenticator.get_auth(self.request, policy=self.policy, binding=self.binding),
                                SecondFactorAuth) and not isinstance(auth, EmailFactorAuth)]
        return any(enrolled_each(user, others))  # one statement for them all

    def enrolled_beside(self, user: Any, others: list[Any]) -> bool:
        allowed = {a.pk for a in self.other_factors()}
        return any(a.pk in allowed for a in others) and bool(verified_email(user))

    def send_code_to(self, user: Any) -> SentCode:
        """Send a code to ``user``'s verified e-mail (the cool-down and daily limit of CodeAuth)."""
        if not self.authenticator.enabled or not self.enrolled(user):
            raise AuthError("disabled")
        if factors.is_disabled(user, self.authenticator):
            raise AuthError("factor_disabled")
        return self._codes(user).send_code({})

    def verify_for(self, user: Any, data: dict[str, Any]) -> None:
        failure = ""
        with factors.checking(user, self.authenticator) as check:
            if check.disabled:
                failure = "factor_disabled"
            else:
                try:
                    destination = self._codes(user).check_code(str(data.get("code_id") or ""),
                                                               str(data.get("code") or ""))
                except AuthError as error:
                    failure = error.code
                else:
                    check.ok = destination == verified_email(user).lower()
                    failure = "" if check.ok else "invalid_code"
        if failure:
            raise AuthError(failure)
