"""The admin's preview of an application's sign-in page: the real template (``experience/sign_in.html``)
with the application's effective policy (its methods in its order, its branding), in a light or a
dark scheme, as its users would see it.

Nothing of the sign-in flow runs: no authorization request, no Interaction row (the template gets
an unsaved one, ``uid="preview"``), no captcha challenge, no code sent. Signing in through it is
impossible: its forms sit in a disabled ``<fieldset>`` (no control can submit) and their action is
the preview's own URL, which answers only GET (a POST is 405). The page has the CSP and
X-Frame-Options of the real pages (``identity.security.deny_framing``) and is never indexed.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from experience import branding, sso
from experience.code_tabs import code_step
from experience.models import Interaction
from experience.policy import resolve
from experience.views import SignInView, sign_in_form_of
from identity.security import deny_framing

# scheme -> (the pages' ``color_scheme``, the media query their dark colours apply under)
SCHEMES = {"light": ("light", "not all"), "dark": ("dark", "all")}
PREVIEW_UID = "preview"


def render_preview(request: HttpRequest, application: Any, scheme: str) -> HttpResponse:
    """``application``'s sign-in page (None: the default experience's), signing in disabled."""
    scheme = scheme if scheme in SCHEMES else "light"
    policy = resolve(application.client_id if application is not None else "")
    interaction = Interaction(uid=PREVIEW_UID, client_id=policy.client_id)  # never saved
    tabs = [a for a in policy.first_factors() if sign_in_form_of(a) is not None]
    current = SignInView.current(request, tabs)
    form = SignInView.fresh_form(request, interaction, current)
    color_scheme, dark_media = SCHEMES[scheme]
    context = {
        "interaction": interaction, "application": application, "tabs": tabs, "current": current, "form": form,
        "buttons": sso.redirect_authenticators(policy), "sign_up_enabled": policy.sign_up.enabled,
        "notice": None, "step": code_step(request, interaction, current, form), "captcha": None,
        **branding.context(policy, application),  # the real pages' branding, so the preview cannot drift
        "color_scheme": color_scheme, "dark_media": dark_media,
        "preview_scheme": scheme, "preview_captcha": policy.captcha, "preview_methods": policy.methods(),
    }
    response = render(request, "experience/admin/sign_in_preview.html", context)
    response["X-Robots-Tag"] = "noindex, nofollow"
    return deny_framing(response)
