"""The identity app's middleware: answers that must never become a 500, and one that is cheap.

- ``PublicDocumentsMiddleware`` answers discovery and JWKS before the rest of the stack (below).
- ``UnavailableMiddleware``: Redis or PostgreSQL away is a 503 (below).
- ``ReadableBodyMiddleware``: a form body that cannot be read answers 400, on every page and endpoint, never 500.

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

import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import BadRequest, SuspiciousOperation
from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, HttpResponseBase, QueryDict
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.urls import Resolver404, ResolverMatch, resolve, reverse
from django.utils.html import escape
from django.utils.module_loading import import_string
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from identity import discovery, keys
from identity.app_settings import app_settings, setting
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
            if incomplete(request):
                return unreadable(request)
        return self.get_response(request)


def incomplete(request: HttpRequest) -> bool:
    """A form body shorter than its ``Content-Length``: the client went away mid-request (gunicorn
    hands the application what arrived). Cut at an ``&`` it would still look complete, and a token
    request would spend its code or refresh token on an answer nobody reads: it does nothing."""
    declared = str(request.META.get("CONTENT_LENGTH") or "")
    if request.content_type != FORM_TYPES[0] or not declared.isdigit():
        return False
    if len(request.body) < int(declared):
        request.POST = QueryDict()  # later readers see an empty form
        return True
    return False


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


def listed_at(middleware: Sequence[str], path: str) -> int | None:
    """Where ``middleware`` (``MIDDLEWARE``'s import paths) lists ``path`` or a subclass of it (the
    standalone server lists a variant of Django's ``AuthenticationMiddleware``), or None."""
    if path in middleware:
        return list(middleware).index(path)
    wanted = import_string(path)
    for index, name in enumerate(middleware):
        try:
            found = import_string(name)
        except ImportError:  # Django reports a path that does not import itself
            continue
        if isinstance(found, type) and issubclass(found, wanted):
            return index
    return None


def install(settings: object) -> None:
    """List the middleware just before ``CsrfViewMiddleware`` (or last, without it) unless the
    project lists it already."""
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    if PATH in middleware:
        return
    middleware.insert(middleware.index(CSRF) if CSRF in middleware else len(middleware), PATH)
    settings.MIDDLEWARE = middleware  # type: ignore[attr-defined]


# -- Redis or PostgreSQL away: 503, from this one place --------------------------------------------------
logger = logging.getLogger("portcullis.unavailable")
UNAVAILABLE_PATH = "identity.middleware.UnavailableMiddleware"
MARK = "_portcullis_unavailable"
DATABASE_ERRORS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError)
try:  # the "redis" extra; without it the cache is not Redis
    from django_redis.exceptions import ConnectionInterrupted  # type: ignore[import-untyped]
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import ResponseError as RedisResponseError  # OOM (noeviction), MISCONF, READONLY
    from redis.exceptions import TimeoutError as RedisTimeoutError

    CACHE_ERRORS: tuple[type[BaseException], ...] = (
        ConnectionInterrupted, RedisConnectionError, RedisTimeoutError, RedisResponseError)
except ImportError:  # pragma: no cover
    CACHE_ERRORS = ()


def outage(exc: BaseException | None) -> str | None:
    """``"cache"`` or ``"database"`` when ``exc`` (or the error it was raised from) is that part
    failing; None for any other error."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, DATABASE_ERRORS):
            return "database"
        if isinstance(exc, CACHE_ERRORS):
            return "cache"
        seen.add(id(exc))
        exc = exc.__cause__
    return None


def retry_after() -> int:
    """Seconds a client is told to wait (``PORTCULLIS_UNAVAILABLE_RETRY_AFTER``, default 5)."""
    return int(setting("UNAVAILABLE_RETRY_AFTER", 5))


class UnavailableMiddleware:
    """Every request that needs the cache (Redis: sessions, rate limits, lockouts, captcha demands, key
    versions) or the database while it is away answers ``503`` with ``Retry-After``, never a 500 and never
    as if the rule had passed (nothing here lets a request through: the view that needed the part never
    answers). The answer suits the face:

    - the OAuth endpoints (token, userinfo, revoke, introspect; discovery and JWKS, JSON too):
      ``{"error": "temporarily_unavailable", "error_description"}``;
    - a view with its own answer (its ``temporarily_unavailable(request, part, retry_after)`` attribute):
      the JSON APIs answer ``{"temporarily_unavailable": {"code": "cache"|"database", ...}}``, the
      authorization endpoint an error redirect to the client (``error=temporarily_unavailable``,
      ``state``, ``iss``) when the database can still check its redirect URI, else the page;
    - everything else a plain page that needs neither the database nor the cache (no template, no branding).

    Failures in a view reach :meth:`UnavailableMiddleware.process_exception`. Failures after it (the
    session middleware saving the session in ``process_response``) are turned into a 500 by Django before
    this middleware sees the response: :func:`mark_outage` (a ``got_request_exception`` receiver) notes the
    part on the request, and the middleware, listed first, answers the 503 instead.

    List it first in ``MIDDLEWARE`` (``IdentityConfig.ready()`` puts it there when a project does not
    list it)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        part = getattr(request, MARK, None)
        if part is not None and response.status_code == 500:
            return unavailable(request, part)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponseBase | None:
        part = outage(exception)
        if part is None:
            return None
        log(request, part, exception)
        return unavailable(request, part)


@receiver(got_request_exception, dispatch_uid="identity.middleware.mark_outage")
def mark_outage(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    """An error Django turns into a 500 outside the view (a middleware's ``process_response``):
    note on the request whether it was an outage, for :class:`UnavailableMiddleware`."""
    exception = sys.exc_info()[1]
    part = outage(exception)
    if request is not None and part is not None:
        setattr(request, MARK, part)
        log(request, part, exception)


def log(request: HttpRequest, part: str, exception: BaseException | None) -> None:
    """One warning per refused request: the part, the path and the error's first line (addresses and
    ports, never a query's parameters or a credential)."""
    first_line = str(exception).strip().splitlines()[0][:200] if str(exception).strip() else ""
    logger.warning("%s unavailable: %s %s answered 503 (%s: %s)", part, request.method, request.path,
                   type(exception).__name__, first_line)


def unavailable(request: HttpRequest, part: str) -> HttpResponseBase:
    """The 503 of a request whose ``part`` (``cache`` or ``database``) is away, in its face's shape."""
    seconds = retry_after()
    match = _match(request)
    response: HttpResponseBase
    description = _("The service is temporarily unavailable. Try again in a few seconds.")
    if _identity_endpoint(match, OAUTH_ENDPOINTS | {"discovery", "jwks"}):
        response = oauth_error("temporarily_unavailable", description, status=503)
    else:
        own_answer = getattr(match.func, "temporarily_unavailable", None) if match is not None else None
        response = own_answer(request, part, seconds) if callable(own_answer) else unavailable_page()
    response["Retry-After"] = str(seconds)
    return response


def _match(request: HttpRequest) -> ResolverMatch | None:
    if request.resolver_match is not None:
        return request.resolver_match
    try:
        return resolve(request.path_info)
    except Resolver404:
        return None


def _identity_endpoint(match: ResolverMatch | None, names: set[str]) -> bool:
    return match is not None and bool(match.app_names) and match.app_names[-1] == "identity" and match.url_name in names


def plain_page(status: int, title: str, text: str) -> HttpResponse:
    """A page that needs nothing: no template, no database, no cache, no branding."""
    html = (f'<!doctype html><html lang="{escape(get_language() or "en")}"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{escape(title)}</title>'
            f"</head><body><main><h1>{escape(title)}</h1><p>{escape(text)}</p></main></body></html>")
    response = HttpResponse(html, status=status, content_type="text/html; charset=utf-8")
    response["Cache-Control"] = "no-store"
    return deny_framing(response)


def unavailable_page() -> HttpResponse:
    return plain_page(503, _("Temporarily unavailable"),
                      _("The service is temporarily unavailable. Try again in a few seconds."))


def install_unavailable(settings: object) -> None:
    """List :class:`UnavailableMiddleware` first unless the project lists it already."""
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    if UNAVAILABLE_PATH not in middleware:
        settings.MIDDLEWARE = [UNAVAILABLE_PATH, *middleware]  # type: ignore[attr-defined]


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

    def documents(self, request: HttpRequest) -> dict[str, str]:
        """Path → which document, for the request's URLconf (the app may be mounted below the root).
        A middleware before this one may have set ``request.urlconf``; the handler makes it the
        thread's URLconf only later (and reading the thread's costs as much as the rest here)."""
        urlconf = getattr(request, "urlconf", None) or settings.ROOT_URLCONF
        known = self._paths
        if known is None or known[0] != urlconf:
            try:
                paths = {reverse("identity:discovery", urlconf=urlconf): "discovery",
                         reverse("identity:jwks", urlconf=urlconf): "jwks"}
            except Exception:  # noqa: BLE001  a URLconf without identity.urls: nothing to answer early
                paths = {}
            known = self._paths = (urlconf, paths)
        return known[1]

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "GET":
            which = self.documents(request).get(request.path)
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
