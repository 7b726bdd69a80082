"""The experience app's settings: one property each, read live."""

from __future__ import annotations

from django.conf import settings


class AppSettings:
    prefix = "PORTCULLIS_"

    def _setting(self, name: str, default: object) -> object:
        return getattr(settings, self.prefix + name, default)

    @property
    def INTERACTION_TTL(self) -> int:
        """Seconds an interaction lives (15 minutes by default)."""
        return int(self._setting("INTERACTION_TTL", 15 * 60))  # type: ignore[arg-type]

    @property
    def INTERACTIONS_PER_SESSION(self) -> int:
        """How many open interactions (browser tabs) one session may hold."""
        return int(self._setting("INTERACTIONS_PER_SESSION", 5))  # type: ignore[arg-type]


app_settings = AppSettings()
