"""Hosted pages for a browser that is already signed in: "Signed in as …, Continue / Not you?".

A sign-in page never shows an empty form to a signed-in user and never loops: Back to a finished
sign-in, a second tab, or ``/sign-in/`` itself offer to continue where the sign-in was going.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse

from experience import branding
from experience import interaction as engine
from experience.models import Interaction
from experience.policy import policy_for
from identity import authentication, languages
from identity.applications import load_application
from identity.security import deny_framing


def owned_interaction(request: HttpRequest, uid: str) -> Interaction | None:
    """This browser's interaction ``uid`` in whatever state (finished, expired), or None."""
    if not uid or uid not in request.session.get(engine.SESSION_KEY, []):
        return None
    return Interaction.objects.filter(uid=uid).first()


def ui_locales(interaction: Interaction | None) -> str:
    """The ``ui_locales`` of the authorization request an interaction serves."""
    if interaction is None or not interaction.state.get("authorize"):
        return ""
    return QueryDict(interaction.state["authorize"]).get("ui_locales", "")


def use_language(request: HttpRequest, interaction: Interaction | None) -> None:
    """The language of ``interaction``'s pages: the user's choice, its ``ui_locales``, the browser's,
    then its application's experience ``language`` (``identity.languages``)."""
    client_id = interaction.client_id if interaction is not None else ""
    languages.use_ui_locales(request, ui_locales(interaction), default=policy_for(client_id, request).language)


def continue_url(request: HttpRequest, interaction: Interaction | None, next_url: str = "") -> str:
    """Where the sign-in was going: its authorization request (the provider decides again, with
    this session), else its validated ``next``."""
    if interaction is not None and interaction.state.get("authorize"):
        return engine.restart_url(interaction)
    if interaction is not None:
        next_url = interaction.state.get("next", "")
    return engine.safe_next(request, next_url)


def provider_asks_again(interaction: Interaction, auth: authentication.Authentication) -> bool:
    """A live interaction for an authorization request begun while this session was already signed
    in: the provider wants a new sign-in (``prompt=login``, ``max_age``, a hint for another
    user), so the form shows. Signing in after it began (another tab) satisfies it. ``auth_time``
    counts whole seconds: within the second of the sign-in, the form shows (never a loop)."""
    live = interaction.completed_at is None and not interaction.is_expired
    began = int(interaction.created_at.timestamp())
    return live and bool(interaction.state.get("authorize")) and auth.auth_time <= began


def for_interaction(request: HttpRequest, uid: str) -> HttpResponse | None:
    """The signed-in page for ``/sign-in/<uid>/``, or None when the sign-in form should show."""
    auth = authentication.current(request)
    if auth is None:
        return None
    interaction = owned_interaction(request, uid)
    if interaction is not None and provider_asks_again(interaction, auth):
        return None
    return page(request, continue_url(request, interaction), interaction)


def for_start(request: HttpRequest, next_url: str) -> HttpResponse | None:
    """The signed-in page for ``/sign-in/?next=…``, or None when nobody is signed in."""
    if authentication.current(request) is None:
        return None
    return page(request, continue_url(request, None, next_url), None, next_url=next_url)


def page(request: HttpRequest, target: str, interaction: Interaction | None, *, next_url: str = "") -> HttpResponse:
    use_language(request, interaction)
    user: Any = request.user
    client_id = interaction.client_id if interaction is not None else ""
    application = load_application(client_id) if client_id else None
    context = {
        **branding.context(policy_for(client_id, request), application),
        "display_name": user.get_full_name() or user.get_username(),
        "account": user.get_username(),
        "continue_url": target,
        "application": application,
        "interaction": interaction,
        "next": next_url,
    }
    return deny_framing(render(request, "experience/signed_in.html", context))


def switch_target(request: HttpRequest, interaction: Interaction | None, next_url: str) -> str:
    """Where "Not you?" goes once signed out: the same sign-in again, as a new interaction."""
    if interaction is not None and interaction.state.get("authorize"):
        return engine.restart_url(interaction)
    if interaction is not None:
        next_url = interaction.state.get("next", "")
    start = reverse("experience:sign-in-start")
    if next_url and engine.safe_next(request, next_url) != engine.safe_next(request, ""):
        return f"{start}?{urlencode({'next': next_url})}"  # on this site: checked again after the sign-in
    return start
