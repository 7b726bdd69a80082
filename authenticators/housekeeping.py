"""What the authenticators app deletes when ``portcullis_cleanup`` runs."""

from __future__ import annotations

from datetime import datetime, timedelta

from authenticators.models import OneTimeCode


def cleanup(now: datetime) -> dict[str, int]:
    """One-time codes a day past their expiry (kept that long, they still count against the daily
    sending limit of their address)."""
    codes, _ = OneTimeCode.objects.filter(expires_at__lt=now - timedelta(days=1)).delete()
    return {"expired one-time codes": codes}
