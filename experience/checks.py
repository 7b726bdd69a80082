"""System checks for the experience app's settings."""

from __future__ import annotations

from typing import Any

from django.core.checks import Error, register

from identity.checks import positive_integer_settings


@register()
def check_integer_settings(app_configs: Any, **kwargs: Any) -> list[Error]:
    return positive_integer_settings(("INTERACTION_TTL", "INTERACTIONS_PER_SESSION"), "experience.E001")
