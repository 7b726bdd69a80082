"""The identity app's settings: one property each, read live from django.conf.settings."""

from __future__ import annotations

import functools

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest


class AppSettings:
    prefix = "PORTCULLIS_"

    def _setting(self, name: str, default: object) -> object:
        return getattr(settings, self.prefix + name, default)

    @property
    def ISSUER(self) -> str:
        """Fixed issuer URL (no trailing slash); empty means the site root of each request."""
        return str(self._setting("ISSUER", "") or "").rstrip("/")

    @property
    def SIGNING_KEY_PEM(self) -> str:
        """A PEM private key to sign with, for production (imported on first use)."""
        return str(self._setting("SIGNING_KEY_PEM", "") or "")

    @property
    def SIGNING_KEY_FILE(self) -> str:
        return str(self._setting("SIGNING_KEY_FILE", "") or "")

    @property
    def CLAIMS_HOOK(self) -> str:
        """Dotted path of ``hook(user, scopes, request) -> dict`` adding custom claims."""
        return str(self._setting("CLAIMS_HOOK", "") or "")

    @property
    def ACR_PASSWORD(self) -> str:
        return str(self._setting("ACR_PASSWORD", "urn:portcullis:acr:1fa"))

    @property
    def REFRESH_TOKEN_ABSOLUTE_SECONDS(self) -> int:
        """A token family dies this long after the sign-in, however often it is refreshed."""
        return int(self._setting("REFRESH_TOKEN_ABSOLUTE_SECONDS", 90 * 24 * 3600))  # type: ignore[arg-type]

    @property
    def SIGN_IN_HANDLER(self) -> str:
        """Dotted path of ``handler(request, authorize_url, application, login_hint) -> url``."""
        return str(self._setting("SIGN_IN_HANDLER", "experience.interaction.begin_authorization"))

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


@receiver(setting_changed)
def _urls_changed(setting: str, **kwargs: object) -> None:
    if setting in ("ROOT_URLCONF", "PORTCULLIS_ISSUER"):
        _mount_path.cache_clear()
        from identity import discovery

        discovery.document.cache_clear()


app_settings = AppSettings()
