"""What the experience app deletes when ``portcullis_cleanup`` runs."""

from __future__ import annotations

from datetime import datetime, timedelta

from experience.app_settings import app_settings
from experience.models import AuditEvent, Interaction

BATCH = 5000  # audit rows deleted per statement: a year of events never locks the table for long


def cleanup(now: datetime) -> dict[str, int]:
    """Interactions past their expiry (finished ones included: their state is no longer needed), and
    audit events past their retention (``PORTCULLIS_AUDIT_RETENTION_DAYS``; 0 keeps them)."""
    interactions, _ = Interaction.objects.filter(expires_at__lt=now).delete()
    return {"expired interactions": interactions, "audit events past their retention": prune_audit(now)}


def prune_audit(now: datetime) -> int:
    days = app_settings.AUDIT_RETENTION_DAYS
    if days <= 0:
        return 0
    old = AuditEvent.objects.filter(created_at__lt=now - timedelta(days=days))
    deleted = 0
    while batch := list(old.values_list("pk", flat=True)[:BATCH]):
        deleted += AuditEvent.objects.filter(pk__in=batch).delete()[0]
    return deleted


def cleanup_captchas(now: datetime) -> dict[str, int]:
    """Captcha challenges past their expiry (part risk)."""
    from experience import captcha

    return {"expired captchas": captcha.cleanup(now)} if captcha.installed() else {}
