"""The ``magic-link`` type: a code kind whose message carries a single-use link.

Everything that makes a one-time code safe comes from ``authenticators.base.CodeAuth`` (through the
built-in ``email-code`` type this one extends): the code is 6 random digits stored only as an HMAC
bound to its handle (``code_id``) and to the interaction that asked for it, it expires, it is spent
by its first use (also under parallel requests), wrong guesses are counted, sends are rate-limited,
and an address without an account gets the same answer while nothing is sent. This type writes one
thing: how the code is delivered, a link to :class:`magic_link.views.FinishView`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit

from django import forms
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from authenticators.types.codes import CodeSettingsForm
from authenticators.types.email_code import EmailCodeAuth
from identity import delivery
from identity.app_settings import app_settings
from identity.identifiers import EMAIL, identifiers_of


class MagicLinkSettingsForm(CodeSettingsForm):
    """The code types' settings (lifetime, attempts, cool-down, daily limit: empty means the site's
    setting), and whether the message also shows the code itself."""

    show_code = forms.BooleanField(
        label=_("Also show the code in the message"), required=False, initial=True,
        help_text=_("For a link opened on another device: the code can then be typed on the sign-in page."),
    )


class MagicLinkAuth(EmailCodeAuth):
    """An e-mailed link signs in to the account holding that e-mail address."""

    def amr(self) -> list[str]:
        return ["otp"]  # a one-time secret sent to the user's mailbox (RFC 8176)

    def deliver(self, destination: str, code: str, *, user: Any, timeout: int) -> None:
        to = identifiers_of(user)[EMAIL] if user is not None else destination
        context = {**self.message_context(code, timeout), "link": self.link(code),
                   "show_code": self.options.get("show_code", True)}
        self.delivered(delivery.send_email, to, "magic_link/link", context)

    def link(self, code: str) -> str:
        """The absolute URL of the finish page for this interaction (``binding``) and this code."""
        path = reverse("magic_link:finish", args=[self.binding])
        query = urlencode({"code_id": self.code_id, "code": code})
        issuer = urlsplit(app_settings.issuer(self.request))
        if issuer.scheme and issuer.netloc:
            return f"{issuer.scheme}://{issuer.netloc}{path}?{query}"
        assert self.request is not None  # no issuer and no request: nowhere to link to
        return self.request.build_absolute_uri(f"{path}?{query}")
