"""The identity app's settings: one property each, read live from django.conf.settings.

:func:`setting` is the one helper every Portcullis app reads its settings through (the experience
app's ``app_settings`` too): ``PORTCULLIS_<NAME>`` or the default, typed as the default is.
"""

from __future__ import annotations

import functools
from typing import TypeVar

from django.conf import settings
from django.http import HttpRequest

PREFIX = "PORTCULLIS_"
T = TypeVar("T")


def setting(name: str, default: T) -> T:
    """``settings.PORTCULLIS_<name>``, or ``default``; read on every call, so that tests and
    ``override_settings`` see changes. Wrong types are reported by the system checks."""
    return getattr(settings, PREFIX + name, default)


class AppSettings:

    @property
    def ISSUER(self) -> str:
        """Fixed issuer URL (no trailing slash); empty means the site root of each request."""
        return str(setting("ISSUER", "") or "").rstrip("/")

    @property
    def SIGNING_KEY_PEM(self) -> str:
        """A PEM private key to sign with, for production (imported on first use)."""
        return setting("SIGNING_KEY_PEM", "") or ""

    @property
    def SIGNING_KEY_FILE(self) -> str:
        return setting("SIGNING_KEY_FILE", "") or ""

    @property
    def CLAIMS_HOOK(self) -> str:
        """Dotted path of ``hook(user, scopes, request) -> dict`` adding custom claims."""
        return setting("CLAIMS_HOOK", "") or ""

    @property
    def ACR_PASSWORD(self) -> str:
        return setting("ACR_PASSWORD", "urn:portcullis:acr:1fa")

    @property
    def ACR_MFA(self) -> str:
        """The ``acr`` of a sign-in that passed a second factor."""
        return setting("ACR_MFA", "urn:portcullis:acr:2fa")

    @property
    def REFRESH_TOKEN_ABSOLUTE_SECONDS(self) -> int:
        """A token family dies this long after the sign-in, however often it is refreshed."""
        return setting("REFRESH_TOKEN_ABSOLUTE_SECONDS", 90 * 24 * 3600)

    @property
    def SIGN_IN_HANDLER(self) -> str:
        """Dotted path of ``handler(request, authorize_url, application, login_hint) -> url``."""
        return setting("SIGN_IN_HANDLER", "experience.interaction.begin_authorization")

    @property
    def PAGE_CONTEXT(self) -> str:
        """Dotted path of ``page_context(request, application) -> dict``: the branding of identity's
        own pages (consent, sign-out, errors); empty (the default without the experience app): none."""
        from django.apps import apps

        return setting("PAGE_CONTEXT", "experience.branding.page_context" if apps.is_installed("experience") else "")

    @property
    def TOKEN_CHECK(self) -> str:
        """Dotted path of ``check(user, application, request, grant_type) -> str | None``, asked at the
        token endpoint before an ``authorization_code`` or ``refresh_token`` grant is answered: a
        string refuses (``invalid_grant`` with it as the description), None allows. Empty: no check."""
        return setting("TOKEN_CHECK", "") or ""

    @property
    def AUTHORIZE_CHECK(self) -> str:
        """Dotted path of ``check(request, user, application) -> str | None``, asked at the
        authorization endpoint before a code is issued to a signed-in user: a string refuses (an
        error page, 403, with it as the message), None allows. Empty: no check."""
        return setting("AUTHORIZE_CHECK", "") or ""

    @property
    def TRUSTED_PROXY_HEADER(self) -> str:
        """The HTTP header whose last address is the client IP (``identity.network``); empty: the socket address."""
        return str(setting("TRUSTED_PROXY_HEADER", "") or "").strip()

    @property
    def REGION_HEADER(self) -> str:
        """The HTTP header naming the client's region (ISO 3166-1 alpha-2); empty: regions are unknown."""
        return str(setting("REGION_HEADER", "") or "").strip()

    def issuer(self, request: HttpRequest | None) -> str:
        """ISSUER, or where the apps are mounted on this request's host (the site root when the
        URLs are included at ``""``), so that discovery sits at issuer + /.well-known/..."""
        if self.ISSUER or request is None:
            return self.ISSUER
        return f"{request.scheme}://{request.get_host()}{mount_path()}"


def mount_path() -> str:
    """Where identity.urls is included ("" at the site root); computed once per URLconf."""
    from django.urls import get_script_prefix, get_urlconf

    return _mount_path(get_script_prefix(), get_urlconf())


@functools.lru_cache(maxsize=16)
def _mount_path(script_prefix: str, urlconf: str | None) -> str:
    from django.urls import reverse

    return reverse("identity:discovery", urlconf=urlconf)[: -len("/.well-known/openid-configuration")]


app_settings = AppSettings()
