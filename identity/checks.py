"""System checks for settings that would weaken the provider."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.security)
def check_password_hasher(app_configs: Any, **kwargs: Any) -> list[Warning]:
    first = (settings.PASSWORD_HASHERS or [""])[0]
    if "Argon2" not in first:
        return [Warning("Passwords are not hashed with Argon2.", hint="Put "
                        "'django.contrib.auth.hashers.Argon2PasswordHasher' first in PASSWORD_HASHERS.",
                        id="identity.W001")]
    return []


@register(Tags.security)
def check_session_and_context(app_configs: Any, **kwargs: Any) -> list[Error]:
    problems = []
    for needed in ("django.contrib.sessions.middleware.SessionMiddleware",
                   "django.contrib.auth.middleware.AuthenticationMiddleware",
                   "django.middleware.csrf.CsrfViewMiddleware"):
        if needed not in settings.MIDDLEWARE:
            problems.append(Error(f"{needed} is required by the sign-in pages.", id="identity.E001"))
    return problems


@register(Tags.security, deploy=True)
def check_issuer(app_configs: Any, **kwargs: Any) -> list[Warning]:
    issuer = getattr(settings, "PORTCULLIS_ISSUER", "")
    if issuer and not issuer.startswith("https://"):
        return [Warning("The issuer is not an https:// URL.", id="identity.W002")]
    return []


def positive_integer_settings(names: tuple[str, ...], check_id: str) -> list[Error]:
    """An error for each ``PORTCULLIS_<name>`` that is set but is not a positive integer."""
    problems = []
    for name in names:
        value = getattr(settings, f"PORTCULLIS_{name}", None)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            problems.append(Error(f"PORTCULLIS_{name} must be a positive integer (seconds or a count), not {value!r}.",
                                  id=check_id))
    return problems


@register()
def check_integer_settings(app_configs: Any, **kwargs: Any) -> list[Error]:
    return positive_integer_settings(("REFRESH_TOKEN_ABSOLUTE_SECONDS",), "identity.E002")
