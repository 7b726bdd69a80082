"""Who calls the Experience API: the browser session (its interactions are bound to it), with
Django's CSRF check on every unsafe method, signed in or not (DRF's SessionAuthentication checks
CSRF only for signed-in users, while a sign-in UI is anonymous)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from experience.errors import EngineError


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request: HttpRequest, reason: str) -> Any:
        return reason


def _no_response(request: HttpRequest) -> HttpResponse:  # pragma: no cover  (never called)
    return HttpResponse()


def check_csrf(request: HttpRequest) -> None:
    """Django's own CSRF check (cookie + ``X-CSRFToken`` header, and the origin for HTTPS); raises
    ``csrf_failed`` (403)."""
    check = _CsrfCheck(_no_response)
    check.process_request(request)
    if check.process_view(request, None, (), {}) is not None:  # type: ignore[arg-type]
        raise EngineError("csrf_failed")


def set_csrf_cookie(request: HttpRequest, response: HttpResponse) -> None:
    """Send the CSRF cookie when the request made a token (as ``ensure_csrf_cookie`` does), with or
    without CsrfViewMiddleware in the project."""
    _CsrfCheck(_no_response).process_response(request, response)


class CsrfSession(BaseAuthentication):
    """The session's user (or anonymous); unsafe methods must pass Django's CSRF check."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        django_request = request._request
        if request.method not in ("GET", "HEAD", "OPTIONS", "TRACE"):
            check_csrf(django_request)
        user = getattr(django_request, "user", None)
        if user is None or not user.is_authenticated or not user.is_active:
            return None
        return user, None


class CsrfSessionScheme(OpenApiAuthenticationExtension):
    """The schema's description of :class:`CsrfSession`."""

    target_class = "experience.api.authentication.CsrfSession"
    name = "browserSession"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": settings.SESSION_COOKIE_NAME,
            "description": (
                "The browser session (the interaction is bound to it). Every unsafe request also sends "
                f"the CSRF token of the `{settings.CSRF_COOKIE_NAME}` cookie, which every GET sets, "
                "in the `X-CSRFToken` header."
            ),
        }


class BearerAccessToken(BaseAuthentication):
    """The auth API's ``check`` and ``sign-out``: an ``Authorization: Bearer`` access token that is
    alive (as userinfo judges it) and was issued to an application allowed the headless API.
    ``invalid_token`` (401) otherwise, ``headless_not_allowed`` (403) for another application's."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        from experience.headless import headless_allowed
        from identity import tokens
        from identity.validators import load_access_token

        scheme, _space, token = request._request.headers.get("Authorization", "").strip().partition(" ")
        access = load_access_token(token.strip()) if scheme.lower() == "bearer" else None
        if access is None or not tokens.access_token_alive(access):
            raise EngineError("invalid_token")
        if not headless_allowed(access.application):
            raise EngineError("headless_not_allowed")
        return access.user, access

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="portcullis"'


class BearerAccessTokenScheme(OpenApiAuthenticationExtension):
    target_class = "experience.api.authentication.BearerAccessToken"
    name = "accessToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "http", "scheme": "bearer",
                "description": "An access token of a UserToken (the auth API, the headless API)."}
