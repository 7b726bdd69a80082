"""What the identity app deletes when ``portcullis_cleanup`` runs."""

from __future__ import annotations

from datetime import datetime, timedelta

from oauth2_provider.models import get_refresh_token_model

from identity.app_settings import app_settings
from identity.models import AuthorizationRecord, ConsentRequest
from identity.sessions import forget_ended


def cleanup(now: datetime) -> dict[str, int]:
    """Authorization records whose token family is over (no live refresh token, past the absolute
    lifetime), and consent requests older than their 15 minutes (answered or not). Expired codes and
    tokens are django-oauth-toolkit's ``cleartokens``. Session rows whose session is gone from the
    store (expired, flushed) are forgotten."""
    cutoff = now - timedelta(seconds=app_settings.REFRESH_TOKEN_ABSOLUTE_SECONDS)
    live_families = get_refresh_token_model().objects.filter(revoked__isnull=True).values("token_family")
    records, _ = (
        AuthorizationRecord.objects.filter(created_at__lt=cutoff).exclude(family__in=live_families).delete()
    )
    consent_requests, _ = ConsentRequest.objects.filter(created_at__lt=now - ConsentRequest.TTL).delete()
    return {"finished authorizations": records, "expired consent requests": consent_requests,
            "ended sessions": forget_ended()}
