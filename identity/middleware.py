"""A form body that cannot be read answers 400, on every page and endpoint, never 500.

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

from django.core.exceptions import BadRequest, SuspiciousOperation
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.urls import Resolver404, resolve
from django.utils.translation import gettext as _

from identity.security import deny_framing
from identity.transport import oauth_error

PATH = "identity.middleware.ReadableBodyMiddleware"
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
