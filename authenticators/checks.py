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
