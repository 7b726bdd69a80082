"""Hosted pages: translate HTTP to engine calls and engine results to pages."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBase, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters

from authenticators.base import AuthError
from authenticators.models import Authenticator
from experience import interaction as engine
from experience.models import Interaction
from identity.security import client_targets, deny_framing
from identity.validators import load_application


def see_other(url: str) -> HttpResponse:
    """303: after a POST that carried credentials the browser must GET the next page (never 307)."""
    return deny_framing(HttpResponse(status=303, headers={"Location": url}))


@method_decorator([never_cache, csrf_protect], name="dispatch")
class SignInStartView(View):
    """``/sign-in/`` without an interaction: sign in to Portcullis itself, then go to ``next``."""

    def get(self, request: HttpRequest) -> HttpResponseBase:
        interaction = engine.start(request, next_url=request.GET.get("next", ""),
                                   login_hint=request.GET.get("login_hint", ""))
        return deny_framing(HttpResponse(status=302, headers={"Location": reverse("experience:sign-in", args=[interaction.uid])}))


@method_decorator([never_cache, csrf_protect, sensitive_post_parameters("password")], name="dispatch")
class SignInView(View):
    template_name = "experience/sign_in.html"

    def get(self, request: HttpRequest, uid: str) -> HttpResponseBase:
        try:
            interaction = engine.load(request, uid)
        except engine.InteractionError as error:
            return self.expired(request, uid, error)
        authenticators = self.authenticators()
        current = self.current(request, authenticators)
        form = None
        if current is not None and current.type.sign_in_form is not None:
            form = current.type.sign_in_form(initial={"identifier": interaction.state.get("login_hint", "")})
        return self.render(request, interaction, authenticators, current, form)

    def post(self, request: HttpRequest, uid: str) -> HttpResponseBase:
        try:
            interaction = engine.load(request, uid)
        except engine.InteractionError as error:
            return self.expired(request, uid, error)
        authenticators = self.authenticators()
        current = self.current(request, authenticators)
        if current is None or current.type.sign_in_form is None:
            return self.render(request, interaction, authenticators, current, None, status=400)
        form = current.type.sign_in_form(data=request.POST)
        if not form.is_valid():
            return self.render(request, interaction, authenticators, current, form, status=400)
        try:
            completed = engine.sign_in(request, interaction, current, form.cleaned_data)
        except AuthError as error:
            form.add_error(None, error.message)
            return self.render(request, interaction, authenticators, current, form, status=400)
        except engine.RequirementMissing:
            return self.render(request, interaction, authenticators, current, form, status=400)
        except engine.InteractionError as error:
            return self.expired(request, uid, error)
        return see_other(completed.redirect_to)

    # -- helpers -----------------------------------------------------------------------------------------
    @staticmethod
    def authenticators() -> list[Authenticator]:
        return [a for a in Authenticator.objects.enabled() if a.type is not None]

    @staticmethod
    def current(request: HttpRequest, authenticators: list[Authenticator]) -> Authenticator | None:
        forms = [a for a in authenticators if a.type.sign_in_form is not None]
        wanted = request.GET.get("authenticator") or request.POST.get("authenticator")
        for authenticator in forms:
            if authenticator.name == wanted:
                return authenticator
        return forms[0] if forms else None

    def render(self, request: HttpRequest, interaction: Interaction, authenticators: list[Authenticator],
               current: Authenticator | None, form: Any, status: int = 200) -> HttpResponse:
        application = load_application(interaction.client_id) if interaction.client_id else None
        context = {
            "interaction": interaction,
            "application": application,
            "brand_name": application.name if application else "Portcullis",
            "tabs": [a for a in authenticators if a.type.sign_in_form is not None],
            "current": current,
            "form": form,
        }
        # Signing in ends in a redirect to the client (through the authorization endpoint).
        redirect_uri = QueryDict(interaction.state.get("authorize", "")).get("redirect_uri", "")
        targets = client_targets(application, redirect_uri) if application else []
        return deny_framing(render(request, self.template_name, context, status=status), form_action=targets)

    @staticmethod
    def expired(request: HttpRequest, uid: str, error: engine.InteractionError) -> HttpResponse:
        interaction = Interaction.objects.filter(uid=uid).first() if uid in request.session.get(engine.SESSION_KEY, []) else None
        context = {"message": error.message, "restart_url": engine.restart_url(interaction)}
        return deny_framing(render(request, "experience/expired.html", context, status=400))
