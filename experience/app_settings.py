"""The experience app's settings: one typed property each, read live through identity's helper."""

from __future__ import annotations

from identity.app_settings import setting


class AppSettings:
    @property
    def INTERACTION_TTL(self) -> int:
        """Seconds an interaction lives (15 minutes by default)."""
        return setting("INTERACTION_TTL", 15 * 60)

    @property
    def INTERACTIONS_PER_SESSION(self) -> int:
        """How many open interactions (browser tabs) one session may hold."""
        return setting("INTERACTIONS_PER_SESSION", 5)

    @property
    def API_MAX_BODY(self) -> int:
        """The largest JSON body (bytes) the Experience API reads: its bodies are a few short fields."""
        return int(setting("API_MAX_BODY", 16 * 1024))

    @property
    def AUDIT_RETENTION_DAYS(self) -> int:
        """Days an audit event is kept; ``portcullis_cleanup`` deletes older ones. 0 keeps them forever."""
        return int(setting("AUDIT_RETENTION_DAYS", 365))


app_settings = AppSettings()
