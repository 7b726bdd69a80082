"""What the identity app deletes when ``portcullis_cleanup`` runs."""

from __future__ import annotations

from datetime import datetime, timedelta

from oauth2_provider.models import get_refresh_token_model

from identity.app_settings import app_settings
from identity.models import AuthorizationRecord


def cleanup(now: datetime) -> dict[str, int]:
    """Authorization records whose token family is over (no live refresh token, past the absolute
    lifetime). Expired codes and tokens are django-oauth-toolkit's ``cleartokens``."""
    cutoff = now - timedelta(seconds=app_settings.REFRESH_TOKEN_ABSOLUTE_SECONDS)
    live_families = get_refresh_token_model().objects.filter(revoked__isnull=True).values("token_family")
    records, _ = (
        AuthorizationRecord.objects.filter(created_at__lt=cutoff).exclude(family__in=live_families).delete()
    )
    return {"finished authorizations": records}
