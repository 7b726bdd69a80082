"""Which hosted page answers which gate: after a step, a page asks the engine to submit; the first
gate not met sends the browser (303) to the page that meets it.

A page module registers its gate here (``STEP_PAGES[gate] = "experience:<url name>"``, the URL
taking the interaction's id); a gate without a page of its own is answered on the sign-in page.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse

from experience import branding, signed_in
from experience import interaction as engine
from experience.access_control import AccessDenied
from experience.gates import RequirementMissing
from experience.models import Interaction
from experience.policy import policy_for
from identity.applications import load_application
from identity.security import client_targets, deny_framing

# gate code -> URL name of the page that meets it (its one argument: the interaction's id).
STEP_PAGES: dict[str, str] = {
    "identify": "experience:sign-in",
    "captcha_required": "experience:sign-in",
    # part signup (experience/account_views.py)
    "profile_incomplete": "experience:profile",
    "new_password_required": "experience:new-password",
}


def see_other(url: str) -> HttpResponse:
    """303: after a POST that carried credentials the browser must GET the next page (never 307)."""
    return deny_framing(HttpResponse(status=303, headers={"Location": url}))


def has_page(gate: str) -> bool:
    return gate in STEP_PAGES and STEP_PAGES[gate] != "experience:sign-in"


def step_url(interaction: Interaction, gate: str) -> str:
    """The page for ``gate`` of ``interaction``."""
    return reverse(STEP_PAGES.get(gate, "experience:sign-in"), args=[interaction.uid])


def advance(request: HttpRequest, interaction: Interaction) -> HttpResponse:
    """After a step: submit; 303 to the client when every gate is met, else to the next gate's
    page. Raises InteractionError (the page shows its expired page)."""
    try:
        completed = engine.submit(request, interaction)
    except RequirementMissing as missing:
        return see_other(step_url(interaction, missing.gate))
    except AccessDenied as error:
        return denied(request, interaction, error)
    return see_other(completed.redirect_to)


def render_step(request: HttpRequest, interaction: Interaction, template: str, context: dict[str, Any],
                status: int = 200, form_action: list[str] | None = None) -> HttpResponse:
    """A page of ``interaction``: branded as its application's experience says, not framable, its forms allowed
    to end at the client (signing in ends in a redirect there, through the authorization endpoint),
    and at ``form_action`` (the upstream providers its buttons send the browser to)."""
    application = load_application(interaction.client_id) if interaction.client_id else None
    context = {**branding.context(policy_for(interaction.client_id, request), application),
               "interaction": interaction, "application": application, **context}
    redirect_uri = QueryDict(interaction.state.get("authorize", "")).get("redirect_uri", "")
    targets = (client_targets(application, redirect_uri) if application else []) + list(form_action or [])
    return deny_framing(render(request, template, context, status=status), form_action=targets)


def expired(request: HttpRequest, uid: str, error: engine.InteractionError) -> HttpResponse:
    """The page of an interaction that cannot be used any more, with a way to start over."""
    interaction = Interaction.objects.filter(uid=uid).first() if uid in request.session.get(engine.SESSION_KEY, []) else None
    signed_in.use_language(request, interaction)
    context = {**branding.for_client(request, interaction.client_id if interaction is not None else ""),
               "message": error.message, "restart_url": engine.restart_url(interaction)}
    return deny_framing(render(request, "experience/expired.html", context, status=400))


def denied(request: HttpRequest, interaction: Interaction | None, error: AccessDenied) -> HttpResponse:
    """The page of a sign-in an access rule refused (403): the refusal's neutral message only (the
    rule and its reason are the admin's, in the audit log)."""
    context = {**branding.for_client(request, interaction.client_id if interaction is not None else ""),
               "message": error.message, "restart_url": engine.restart_url(interaction)}
    return deny_framing(render(request, "experience/access_denied.html", context, status=403))


def live(request: HttpRequest, uid: str) -> Interaction | HttpResponse:
    """This browser's live interaction ``uid`` (its language in use), or the expired page."""
    try:
        interaction = engine.load(request, uid)
    except engine.InteractionError as error:
        return expired(request, uid, error)
    signed_in.use_language(request, interaction)
    return interaction
