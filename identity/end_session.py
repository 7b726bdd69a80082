"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0)."""

from __future__ import annotations

import json
import secrets
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBase, QueryDict
from django.shortcuts import render
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.cache import never_cache
from jwcrypto import jws
from jwcrypto.common import JWException

from identity import authentication, keys, languages, subjects, tokens
from identity.app_settings import app_settings
from identity.applications import load_application
from identity.pages import error_page
from identity.security import deny_framing

PENDING_SESSION_KEY = "portcullis_logout"


def verified_claims(id_token: str, issuer: str | None = None) -> dict[str, Any] | None:
    """The claims of an ID token we signed (expired ones too), or None when it is not ours."""
    if not isinstance(id_token, str) or len(id_token) > 8192:
        return None
    try:
        token = jws.JWS()
        token.deserialize(id_token)
        kid = token.jose_header.get("kid")
        key = keys.key_set().public_keys.get(kid)
        if key is None or token.jose_header.get("alg") != "RS256":
            return None
        token.verify(key, alg="RS256")
        claims = json.loads(token.payload)
    except (JWException, ValueError, TypeError, KeyError, AttributeError):
        return None
    if not isinstance(claims, dict) or "sub" not in claims or "aud" not in claims:
        return None
    if issuer is not None and claims.get("iss") != issuer:
        return None
    return claims


def hinted_subject(id_token_hint: str) -> str | None:
    claims = verified_claims(id_token_hint)
    return str(claims["sub"]) if claims else None


def is_session_subject(subject: str | None, auth: authentication.Authentication) -> bool:
    """Whether ``subject`` (from an ID token hint) names the session's user: subjects compared,
    never primary keys (the session keeps the pk, tokens carry the subject)."""
    return subject is not None and subject == subjects.subject_for_user_id(auth.user_id)


def audiences(claims: dict[str, Any]) -> list[str]:
    aud = claims.get("aud")
    return [aud] if isinstance(aud, str) else [a for a in aud or [] if isinstance(a, str)]


def sign_out(request: HttpRequest) -> None:
    """End the browser session and revoke the tokens issued through it."""
    auth = authentication.current(request)
    if auth is not None:
        tokens.revoke_session_families(auth.sid)
    authentication.sign_out(request)


@method_decorator(never_cache, name="dispatch")
class EndSessionView(View):
    def get(self, request: HttpRequest) -> HttpResponseBase:
        return self.handle(request, request.GET)

    def post(self, request: HttpRequest) -> HttpResponseBase:
        if "confirm" in request.POST:
            return self.confirm(request)
        return self.handle(request, request.POST)

    def handle(self, request: HttpRequest, params: QueryDict) -> HttpResponseBase:
        languages.use_ui_locales(request, params.get("ui_locales", ""))
        hint = params.get("id_token_hint", "")
        claims = None
        if hint:
            claims = verified_claims(hint, app_settings.issuer(request))
            if claims is None:
                return error_page(request, "invalid_request", _("The ID token hint is not valid."))
        client_id = params.get("client_id", "")
        if claims is not None:
            if client_id and client_id not in audiences(claims):
                return error_page(request, "invalid_request", _("The ID token hint was not issued to this client."))
            client_id = client_id or (audiences(claims) or [""])[0]
        application = load_application(client_id) if client_id else None
        if client_id and application is None:
            return error_page(request, "invalid_client", _("The application is unknown."))
        redirect_to = params.get("post_logout_redirect_uri", "")
        if redirect_to:
            if application is None or redirect_to not in application.post_logout_redirect_uris.split():
                return error_page(request, "invalid_request", _("The post-logout redirect URI is not registered for this application."))
            state = params.get("state")
            if state:
                redirect_to = _with_state(redirect_to, state)
        auth = authentication.current(request)
        if auth is None or (claims is not None and is_session_subject(str(claims["sub"]), auth)):
            sign_out(request)
            return self.done(request, redirect_to, application)
        key = secrets.token_urlsafe(16)
        request.session[PENDING_SESSION_KEY] = {"key": key, "redirect_to": redirect_to, "client_id": client_id}
        context = {"key": key, "application": application}
        return deny_framing(render(request, "identity/logout_confirm.html", context))

    def confirm(self, request: HttpRequest) -> HttpResponseBase:
        languages.use_ui_locales(request, request.GET.get("ui_locales", ""))
        pending = request.session.get(PENDING_SESSION_KEY) or {}
        if not pending or not secrets.compare_digest(str(pending.get("key")), request.POST.get("key", "")):
            # A stale tab or a forged answer: nothing happens, and the page says so.
            still = done_context(not request.user.is_authenticated, None)
            return deny_framing(render(request, "identity/logout_done.html", still, status=400))
        application = load_application(pending["client_id"]) if pending.get("client_id") else None
        if request.POST.get("confirm") != "yes":
            request.session.pop(PENDING_SESSION_KEY, None)
            return deny_framing(render(request, "identity/logout_done.html", done_context(False, application)))
        sign_out(request)
        return self.done(request, pending.get("redirect_to", ""), application)

    @staticmethod
    def done(request: HttpRequest, redirect_to: str, application: Any) -> HttpResponseBase:
        if redirect_to:
            status = 303 if request.method == "POST" else 302
            return deny_framing(HttpResponse(status=status, headers={"Location": redirect_to}))
        return deny_framing(render(request, "identity/logout_done.html", done_context(True, application)))


def done_context(signed_out: bool, application: Any) -> dict[str, Any]:
    """The last page of a sign-out offers a way on: back to the application (its first registered
    post-logout URI) when the logout named one, and signing in again."""
    registered = application.post_logout_redirect_uris.split() if application is not None else []
    back = next((uri for uri in registered if uri.startswith(("https://", "http://"))), "")
    return {"signed_out": signed_out, "application": application, "back_url": back}


def _with_state(uri: str, state: str) -> str:
    from urllib.parse import urlencode

    return uri + ("&" if "?" in uri else "?") + urlencode({"state": state})
