"""System checks for settings that would weaken the provider."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register, run_checks
from django.core.exceptions import ImproperlyConfigured


def refuse_to_serve_with_errors() -> None:
    """Run Django's system checks as ``manage.py runserver`` does, and refuse to start on an error.

    gunicorn, uvicorn and other servers import a project's ``wsgi.py`` / ``asgi.py`` without running
    the checks, so a server missing ``PORTCULLIS_ISSUER`` with ``DEBUG`` off (``identity.E002``)
    would start and take its issuer from each request's Host header. Call this at the end of those
    modules (the standalone server's ``config/wsgi.py`` does). Warnings are left to ``manage.py check``.
    """
    errors = [message for message in run_checks() if message.is_serious() and not message.is_silenced()]
    if errors:
        raise ImproperlyConfigured("System check found errors:\n" + "\n".join(str(error) for error in errors))


@register(Tags.security)
def check_password_hasher(app_configs: Any, **kwargs: Any) -> list[Warning]:
    first = (settings.PASSWORD_HASHERS or [""])[0]
    if "Argon2" not in first:
        return [Warning("Passwords are not hashed with Argon2.", hint="Put "
                        "'django.contrib.auth.hashers.Argon2PasswordHasher' first in PASSWORD_HASHERS.",
                        id="identity.W001")]
    return []


FAIL_OPEN_CACHES = {"django.core.cache.backends.dummy.DummyCache"}
PER_PROCESS_CACHES = {"django.core.cache.backends.locmem.LocMemCache"}


@register(Tags.security, Tags.caches)
def check_cache_fails_closed(app_configs: Any, **kwargs: Any) -> list[Error]:
    """Rate limits, lockouts, captcha and code budgets count in the default cache: a cache that
    forgets (DummyCache) or hides its errors (django-redis ``IGNORE_EXCEPTIONS``) would let every
    attempt through, so it is refused; outages must answer 503 instead (docs/deploy.md)."""
    default: dict[str, Any] = dict(settings.CACHES.get("default", {}))
    options: dict[str, Any] = dict(default.get("OPTIONS") or {})
    if default.get("BACKEND") in FAIL_OPEN_CACHES or options.get("IGNORE_EXCEPTIONS") or getattr(
            settings, "DJANGO_REDIS_IGNORE_EXCEPTIONS", False):
        return [Error("The default cache fails open: rate limits and lockouts would let every attempt through.",
                      hint="Use a shared cache that raises on errors (django-redis without IGNORE_EXCEPTIONS); "
                           "an outage then answers 503 instead.", id="identity.E005")]
    return []


@register(Tags.security, Tags.caches, deploy=True)
def check_cache_is_shared(app_configs: Any, **kwargs: Any) -> list[Warning]:
    if settings.CACHES.get("default", {}).get("BACKEND") in PER_PROCESS_CACHES:
        return [Warning("The default cache is per process: each worker counts failed sign-ins and rate limits on "
                        "its own.", hint="Use Redis (django-redis) or another cache every process shares.",
                        id="identity.W004")]
    return []


SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"


@register(Tags.security)
def check_email_timeout(app_configs: Any, **kwargs: Any) -> list[Warning]:
    """Codes and notices are sent while the request waits: over SMTP with no ``EMAIL_TIMEOUT``
    (Django's default), a mail server that takes the connection and never answers holds that worker
    until the connection dies, instead of answering 503."""
    if settings.EMAIL_BACKEND == SMTP_BACKEND and getattr(settings, "EMAIL_TIMEOUT", None) is None:
        return [Warning("E-mail goes over SMTP without EMAIL_TIMEOUT: a mail server that never answers would "
                        "hold the worker sending a code or a notice.",
                        hint="Set EMAIL_TIMEOUT (seconds), e.g. 10, as the standalone settings do.",
                        id="identity.W005")]
    return []


@register(Tags.security)
def check_session_and_context(app_configs: Any, **kwargs: Any) -> list[Error]:
    from identity.middleware import listed_at

    problems = []
    for needed in ("django.contrib.sessions.middleware.SessionMiddleware",
                   "django.contrib.auth.middleware.AuthenticationMiddleware",
                   "django.middleware.csrf.CsrfViewMiddleware"):
        if listed_at(settings.MIDDLEWARE, needed) is None:  # or a subclass of it
            problems.append(Error(f"{needed} is required by the sign-in pages.", id="identity.E001"))
    return problems


@register(Tags.security)
def check_readable_body_middleware(app_configs: Any, **kwargs: Any) -> list[Warning]:
    from identity.middleware import CSRF, PATH

    middleware = list(settings.MIDDLEWARE)
    if PATH in middleware and (CSRF not in middleware or middleware.index(PATH) < middleware.index(CSRF)):
        return []
    return [Warning(f"{PATH} is not listed before {CSRF}.",
                    hint="Without it a form body in another charset than UTF-8 answers 500 on every page. "
                    f"Put {PATH!r} just before {CSRF!r} in MIDDLEWARE.", id="identity.W003")]


@register(Tags.security)
def check_issuer_configured(app_configs: Any, **kwargs: Any) -> list[Error]:
    """Without a fixed issuer each request's Host header (its port, case, trailing dot) becomes the
    issuer, and http behind a TLS proxy: only a DEBUG server may go without one."""
    issuer = getattr(settings, "PORTCULLIS_ISSUER", "") or ""
    if not issuer:
        if settings.DEBUG:
            return []
        return [Error("PORTCULLIS_ISSUER is not set and DEBUG is off.",
                      hint="Set the public URL of the provider, e.g. https://id.example.com (the ISSUER "
                      "environment variable of the standalone server): without it each request's Host "
                      "header becomes the issuer.", id="identity.E002")]
    parts = urlsplit(issuer)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        return [Error(f"PORTCULLIS_ISSUER {issuer!r} is not an absolute http(s) URL without query or fragment.",
                      id="identity.E003")]
    return []


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
    return positive_integer_settings(("REFRESH_TOKEN_ABSOLUTE_SECONDS",), "identity.E004")


@register()
def check_metrics(app_configs: Any, **kwargs: Any) -> list[Error | Warning]:
    """``/metrics`` (identity.operations): the library is there, the endpoint is protected, the allow list parses."""
    import ipaddress

    from identity import metrics

    problems: list[Error | Warning] = []
    entries = getattr(settings, "PORTCULLIS_METRICS_ALLOWED_IPS", [])
    for entry in entries.split(",") if isinstance(entries, str) else entries:
        try:
            ipaddress.ip_network(str(entry).strip(), strict=False)
        except ValueError:
            problems.append(Error(f"PORTCULLIS_METRICS_ALLOWED_IPS holds {entry!r}, which is no IP address or network.",
                                  hint="Addresses or networks such as 10.0.0.0/8, comma-separated (METRICS_ALLOWED_IPS).",
                                  id="identity.E020"))
    if not getattr(settings, "PORTCULLIS_METRICS_ENABLED", False):
        return problems
    if not metrics.available():
        problems.append(Warning("Metrics are enabled but prometheus_client is not installed: /metrics answers 404.",
                                hint='pip install "django-portcullis[serve]" (or prometheus_client).', id="identity.W020"))
    if not getattr(settings, "PORTCULLIS_METRICS_TOKEN", "") and not entries:
        problems.append(Warning("Metrics are enabled without PORTCULLIS_METRICS_TOKEN or PORTCULLIS_METRICS_ALLOWED_IPS: "
                                "/metrics refuses every request.",
                                hint="Set METRICS_TOKEN (a long random bearer token) and/or METRICS_ALLOWED_IPS.",
                                id="identity.W021"))
    return problems
