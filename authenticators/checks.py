"""System checks for the authenticators app's settings (part mfa)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from identity.checks import positive_integer_settings


@register()
def check_factor_settings(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    problems: list[CheckMessage] = list(positive_integer_settings(("FACTOR_MAX_FAILURES",), "authenticators.E001"))
    key = getattr(settings, "PORTCULLIS_TOTP_ENCRYPTION_KEY", "")
    if not (isinstance(key, str) or (isinstance(key, (list, tuple)) and all(isinstance(k, str) and k for k in key))):
        problems.append(Error("PORTCULLIS_TOTP_ENCRYPTION_KEY must be a string or a list of non-empty strings.",
                              id="authenticators.E002"))
    return problems


@register(Tags.security, deploy=True)
def check_totp_encryption(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    if getattr(settings, "PORTCULLIS_TOTP_ENCRYPTION_KEY", ""):
        return []
    return [Warning("TOTP secrets are stored unencrypted: whoever reads the database can compute users' codes.",
                    hint="Set PORTCULLIS_TOTP_ENCRYPTION_KEY (env TOTP_ENCRYPTION_KEY), kept apart from the "
                         "database's backups (docs/mfa.md).", id="authenticators.W001")]


@register(Tags.database)
def check_registered_types(app_configs: Any, databases: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """An authenticator whose type is not registered (its package removed from INSTALLED_APPS, a
    typo in ``portcullis_config``) is skipped by the sign-in pages and APIs: say so. A database
    check: ``manage.py migrate`` and ``manage.py check --database default`` run it."""
    from django.db import DatabaseError

    from authenticators.models import Authenticator
    from authenticators.registry import registry

    problems: list[CheckMessage] = []
    for alias in databases or ():
        try:
            rows = list(Authenticator.objects.using(alias).order_by("name").values_list("name", "auth_type"))
        except DatabaseError:  # not migrated yet: nothing to check
            continue
        for name, auth_type in rows:
            if auth_type not in registry:
                problems.append(Warning(
                    f"The authenticator {name!r} is of type {auth_type!r}, which no installed app registers: "
                    "it is not offered on the sign-in pages or the APIs.",
                    hint="Install the app that registers the type (INSTALLED_APPS), or delete or disable the "
                         "authenticator in the admin.", obj=f"Authenticator {name}", id="authenticators.W002"))
    return problems
