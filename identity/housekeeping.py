"""What the identity app deletes when ``portcullis_cleanup`` runs."""

from __future__ import annotations

from datetime import datetime, timedelta

from oauth2_provider.models import (
    clear_expired,
    get_access_token_model,
    get_grant_model,
    get_id_token_model,
    get_refresh_token_model,
)

from identity.app_settings import app_settings
from identity.models import AuthorizationRecord, ConsentRequest
from identity.sessions import forget_ended


def cleanup(now: datetime) -> dict[str, int]:
    """Authorization records whose token family is over (no live refresh token, past the absolute
    lifetime), and consent requests older than their 15 minutes (answered or not). Expired
    authorization codes and tokens go as django-oauth-toolkit's ``cleartokens`` deletes them (its
    ``clear_expired``: revoked refresh tokens are kept while reuse detection needs them). Session rows
    whose session is gone from the store (expired, flushed) are forgotten."""
    tokens = expired_tokens_and_codes()
    cutoff = now - timedelta(seconds=app_settings.REFRESH_TOKEN_ABSOLUTE_SECONDS)
    live_families = get_refresh_token_model().objects.filter(revoked__isnull=True).values("token_family")
    records, _ = (
        AuthorizationRecord.objects.filter(created_at__lt=cutoff).exclude(family__in=live_families).delete()
    )
    consent_requests, _ = ConsentRequest.objects.filter(created_at__lt=now - ConsentRequest.TTL).delete()
    return {"expired tokens and authorization codes": tokens, "finished authorizations": records, "expired consent requests": consent_requests,
            "ended sessions": forget_ended()}


def expired_tokens_and_codes() -> int:
    models = (get_access_token_model(), get_refresh_token_model(), get_id_token_model(), get_grant_model())
    before = sum(model.objects.count() for model in models)
    clear_expired()
    return before - sum(model.objects.count() for model in models)
