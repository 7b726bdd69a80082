"""The identity app's middleware.

``PublicDocumentsMiddleware`` answers discovery and JWKS before the rest of the stack (below).

``ReadableBodyMiddleware``: a form body that cannot be read answers 400, on every page and endpoint, never 500.

Django refuses some bodies only when ``request.POST`` is first read: a form declared in a charset
other than UTF-8, too many fields, a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE``, broken multipart.
The first reader is usually ``CsrfViewMiddleware``; the exception then goes to Django's default
error handler, whose ``requires_csrf_token`` decorator reads ``request.POST`` again, raises again,
and the answer becomes a 500. This middleware reads the body first, once, and answers 400 itself:
OAuth JSON ``invalid_request`` on the OAuth endpoints, the error page elsewhere.

``IdentityConfig.ready()`` puts it just before ``CsrfViewMiddleware`` when a project does not list
it (system check ``identity.W003`` says when it is missing or comes too late).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import BadRequest, SuspiciousOperation
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.urls import Resolver404, get_urlconf, resolve, reverse
from django.utils.translation import gettext as _

from identity import discovery, keys
from identity.app_settings import app_settings
from identity.security import deny_framing
from identity.transport import oauth_error

PATH = "identity.middleware.ReadableBodyMiddleware"
DOCUMENTS_PATH = "identity.middleware.PublicDocumentsMiddleware"
CSRF = "django.middleware.csrf.CsrfViewMiddleware"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# TooManyFieldsSent, TooManyFilesSent and RequestDataTooBig are SuspiciousOperations.
UNREADABLE = (BadRequest, SuspiciousOperation, MultiPartParserError, UnicodeDecodeError)
OAUTH_ENDPOINTS = {"token", "revoke", "introspect", "userinfo"}


class ReadableBodyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and request.content_type in FORM_TYPES:
            try:
                request.POST  # noqa: B018  parse now, once
            except UNREADABLE:
                request._mark_post_parse_error()  # type: ignore[attr-defined]  # later readers see an empty form
                return unreadable(request)
        return self.get_response(request)


def unreadable(request: HttpRequest) -> HttpResponse:
    """The 400 of an unreadable body: the OAuth error on the OAuth endpoints, a view's own answer when
    it has one (its ``unreadable_body(request)`` attribute: the JSON APIs answer in their error
    shape), the error page elsewhere."""
    try:
        match = resolve(request.path_info)
    except Resolver404:
        match = None
    if match is not None and match.app_names and match.app_names[-1] == "identity" and match.url_name in OAUTH_ENDPOINTS:
        return oauth_error("invalid_request", "The request body cannot be read.")
    own_answer = getattr(match.func, "unreadable_body", None) if match is not None else None
    if callable(own_answer):
        return own_answer(request)
    context = {"error": "invalid_request", "description": _("The form could not be read. Go back and try again.")}
    return deny_framing(render(request, "identity/error.html", context, status=400))


def install(settings: object) -> None:
    """List the middleware just before ``CsrfViewMiddleware`` (or last, without it) unless the
    project lists it already."""
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    if PATH in middleware:
        return
    middleware.insert(middleware.index(CSRF) if CSRF in middleware else len(middleware), PATH)
    settings.MIDDLEWARE = middleware  # type: ignore[attr-defined]


class PublicDocumentsMiddleware:
    """Answers ``GET`` of the discovery document and the JWKS at once, with the bytes kept in memory
    (``identity.discovery.document``, ``identity.keys.key_set``), so that the most requested
    documents skip the session, locale, CSRF, authentication and messages middleware, none of which
    they use. Put it right after ``SecurityMiddleware`` (whose redirect to https and security headers
    still apply). The answer is the views' (``DiscoveryView``, ``JwksView``): same body, same
    ``Content-Type``, ``Cache-Control``, ``Access-Control-Allow-Origin: *`` and ``X-Frame-Options``.
    It has no ``Vary: Accept-Language`` / ``Content-Language``: the documents are the same in
    every language. The Host header is still checked against ``ALLOWED_HOSTS`` (a 400 otherwise).

    Every other request, and these paths with another method (the CORS preflight, HEAD, POST's
    405) or without a fixed ``ISSUER`` (discovery then follows the Host header), goes on to the views.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._paths: tuple[object, dict[str, str]] | None = None

    def documents(self) -> dict[str, str]:
        """Path → which document, for the URLconf in force (the app may be mounted below the root)."""
        urlconf = get_urlconf() or settings.ROOT_URLCONF
        known = self._paths
        if known is None or known[0] != urlconf:
            try:
                paths = {reverse("identity:discovery"): "discovery", reverse("identity:jwks"): "jwks"}
            except Exception:  # noqa: BLE001  a URLconf without identity.urls: nothing to answer early
                paths = {}
            known = self._paths = (urlconf, paths)
        return known[1]

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "GET":
            which = self.documents().get(request.path)
            if which is not None:
                request.get_host()  # DisallowedHost → 400, as CommonMiddleware would answer
                body = self.body(which)
                if body is not None:
                    response = HttpResponse(body, content_type="application/json", headers={
                        "Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"})
                    response["Content-Length"] = str(len(body))
                    response["X-Frame-Options"] = getattr(settings, "X_FRAME_OPTIONS", "DENY").upper()
                    return response
        return self.get_response(request)

    @staticmethod
    def body(which: str) -> bytes | None:
        if which == "jwks":
            return keys.key_set().jwks_json
        issuer = app_settings.ISSUER
        return discovery.document(issuer) if issuer else None  # without ISSUER: the view (Vary: Host)
