"""System checks for the experience app's settings."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Tags, Warning, register

from identity.checks import positive_integer_settings


@register()
def check_integer_settings(app_configs: Any, **kwargs: Any) -> list[Error]:
    return positive_integer_settings(("INTERACTION_TTL", "INTERACTIONS_PER_SESSION"), "experience.E001")


# -- part risk: captcha and risk counters ------------------------------------------------------------
@register(Tags.security)
def check_captcha(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """django-simple-captcha's test mode accepts any answer: never outside DEBUG (tests run with it)."""
    from django.apps import apps
    from django.conf import settings

    problems: list[CheckMessage] = []
    if getattr(settings, "CAPTCHA_TEST_MODE", False) and not settings.DEBUG:
        problems.append(Error("CAPTCHA_TEST_MODE is on while DEBUG is off: every captcha answer is accepted.",
                              hint="Remove CAPTCHA_TEST_MODE from the settings.", id="experience.E010"))
    if not apps.is_installed("captcha"):
        problems.append(Warning("The captcha app (django-simple-captcha) is not installed.",
                                hint="Add 'captcha' to INSTALLED_APPS and include captcha.urls at captcha/: without "
                                "it a step that the risk rules want a captcha for is refused (429).",
                                id="experience.W010"))
    return problems + positive_integer_settings(risk_settings(), "experience.E011")


def risk_settings() -> tuple[str, ...]:
    from experience.risk import INTEGER_SETTINGS

    return INTEGER_SETTINGS


@register(Tags.security, deploy=True)
def check_staff_mfa(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    from identity.app_settings import setting

    if not setting("STAFF_MFA_REQUIRED", True):
        return [Warning("PORTCULLIS_STAFF_MFA_REQUIRED is off: staff sign in to the admin without a second factor.",
                        id="experience.W011")]
    return []
