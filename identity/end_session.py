"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0)."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse, HttpResponseBase, QueryDict
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from jwcrypto import jws
from jwcrypto.common import JWException

from identity import authentication, keys, languages, subjects, tokens
from identity.app_settings import app_settings
from identity.applications import load_application
from identity.pages import error_page, render_page
from identity.security import deny_framing
from identity.views_base import View

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


LIMITS = {"id_token_hint": 8192, "client_id": 255, "post_logout_redirect_uri": 2000, "state": 2048,
          "logout_hint": 254, "ui_locales": 255}
CARRY_PARAM = "logout"
CARRY_SALT = "portcullis.end-session"
CARRY_SECONDS = 600


@dataclass(frozen=True)
class LogoutRequest:
    """A checked logout request: the hint's subject (when a hint came), the client, and where to go
    afterwards (registered, with the state)."""

    subject: str | None
    client_id: str
    redirect_to: str
    application: Any = None


@method_decorator([csrf_exempt, never_cache], name="dispatch")
class EndSessionView(View):
    """RP-initiated logout by GET or by POST. A relying party may POST its parameters from its own
    site (RP-Initiated Logout §2), so the request itself is exempt from Django's CSRF check; the
    user's answer to "Sign out?" is not (see :meth:`post`)."""

    # No HEAD: Django would answer it with the GET handler, which signs out.
    http_method_names = ["get", "post", "options"]

    def get(self, request: HttpRequest) -> HttpResponseBase:
        if CARRY_PARAM in request.GET:
            return self.carried(request, request.GET[CARRY_PARAM])
        return self.handle(request, request.GET)

    def post(self, request: HttpRequest) -> HttpResponseBase:
        if "confirm" in request.POST:
            return csrf_protect(self.confirm)(request)
        return self.handle(request, request.POST)

    def handle(self, request: HttpRequest, params: QueryDict) -> HttpResponseBase:
        languages.use_ui_locales(request, params.get("ui_locales", ""))
        checked = self.check(request, params)
        if isinstance(checked, HttpResponseBase):
            return checked
        if request.method == "POST" and settings.SESSION_COOKIE_NAME not in request.COOKIES:
            # A cross-site POST carries no SameSite=Lax session cookie: we cannot see who is signed
            # in. Carry the checked request over to a GET, which the browser sends with the cookie.
            return deny_framing(HttpResponse(status=303, headers={"Location": carry_url(checked)}))
        return self.decide(request, checked)

    @staticmethod
    def check(request: HttpRequest, params: QueryDict) -> LogoutRequest | HttpResponseBase:
        """The request's hint, client and redirect URI, checked; an error page when one is wrong."""
        if any(len(params.get(name, "")) > limit for name, limit in LIMITS.items()):
            return error_page(request, "invalid_request", _("The sign-out request is too large."))
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
        subject = str(claims["sub"]) if claims is not None else None
        return LogoutRequest(subject, client_id, redirect_to, application)

    def carried(self, request: HttpRequest, value: str) -> HttpResponseBase:
        try:
            data = signing.loads(value, salt=CARRY_SALT, max_age=CARRY_SECONDS)
        except signing.BadSignature:  # also expired
            return error_page(request, "invalid_request", _("This sign-out request has expired. Go back to the application."))
        application = load_application(data["c"]) if data["c"] else None
        return self.decide(request, LogoutRequest(data["s"], data["c"], data["r"], application))

    def decide(self, request: HttpRequest, logout: LogoutRequest) -> HttpResponseBase:
        """Sign out at once when nobody is signed in or the hint names the Portcullis sign-in of
        this browser; otherwise ask (a session opened elsewhere, e.g. Django admin's login, too)."""
        auth = authentication.current(request)
        if not request.user.is_authenticated or (auth is not None and is_session_subject(logout.subject, auth)):
            sign_out(request)
            return self.done(request, logout.redirect_to, logout.application)
        key = secrets.token_urlsafe(16)
        request.session[PENDING_SESSION_KEY] = {"key": key, "redirect_to": logout.redirect_to,
                                                "client_id": logout.client_id}
        context = {"key": key, "application": logout.application}
        targets = [logout.redirect_to] if logout.redirect_to else []  # where "Sign out" ends
        return deny_framing(render_page(request, "identity/logout_confirm.html", context, logout.application), form_action=targets)

    def confirm(self, request: HttpRequest) -> HttpResponseBase:
        """The user's answer; reached through csrf_protect, and the key is bound to the session."""
        languages.use_ui_locales(request, request.GET.get("ui_locales", ""))
        pending = request.session.get(PENDING_SESSION_KEY) or {}
        if not pending or not secrets.compare_digest(str(pending.get("key")), request.POST.get("key", "")):
            # A stale tab or a forged answer: nothing happens, and the page says so.
            still = done_context(not request.user.is_authenticated, None)
            return deny_framing(render_page(request, "identity/logout_done.html", still, status=400))
        application = load_application(pending["client_id"]) if pending.get("client_id") else None
        if request.POST.get("confirm") != "yes":
            request.session.pop(PENDING_SESSION_KEY, None)
            return deny_framing(render_page(request, "identity/logout_done.html", done_context(False, application), application))
        sign_out(request)
        return self.done(request, pending.get("redirect_to", ""), application)

    @staticmethod
    def done(request: HttpRequest, redirect_to: str, application: Any) -> HttpResponseBase:
        if redirect_to:
            status = 303 if request.method == "POST" else 302
            return deny_framing(HttpResponse(status=status, headers={"Location": redirect_to}))
        return deny_framing(render_page(request, "identity/logout_done.html", done_context(True, application), application))


def done_context(signed_out: bool, application: Any) -> dict[str, Any]:
    """The last page of a sign-out offers a way on: back to the application (its first registered
    post-logout URI) when the logout named one, and signing in again."""
    registered = application.post_logout_redirect_uris.split() if application is not None else []
    back = next((uri for uri in registered if uri.startswith(("https://", "http://"))), "")
    return {"signed_out": signed_out, "application": application, "back_url": back}


def _with_state(uri: str, state: str) -> str:
    from urllib.parse import urlencode

    return uri + ("&" if "?" in uri else "?") + urlencode({"state": state})


def carry_url(logout: LogoutRequest) -> str:
    """Our own end-session URL carrying the checked request, signed, for ten minutes. The ID token
    hint itself stays out of the URL: only its subject travels."""
    from urllib.parse import urlencode

    from django.urls import reverse

    data = {"s": logout.subject, "c": logout.client_id, "r": logout.redirect_to}
    return f"{reverse('identity:end-session')}?{urlencode({CARRY_PARAM: signing.dumps(data, salt=CARRY_SALT, compress=True)})}"
