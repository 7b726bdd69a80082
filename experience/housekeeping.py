"""What the experience app deletes when ``portcullis_cleanup`` runs."""

from __future__ import annotations

from datetime import datetime

from experience.models import Interaction


def cleanup(now: datetime) -> dict[str, int]:
    """Interactions past their expiry (finished ones included: their state is no longer needed)."""
    interactions, _ = Interaction.objects.filter(expires_at__lt=now).delete()
    return {"expired interactions": interactions}


def cleanup_captchas(now: datetime) -> dict[str, int]:
    """Captcha challenges past their expiry (part risk)."""
    from experience import captcha

    return {"expired captchas": captcha.cleanup(now)} if captcha.installed() else {}
