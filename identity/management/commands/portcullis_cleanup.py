"""Delete what has expired: interactions, consent pages left unanswered (or answered) past their
15 minutes, and authorization records whose token family is over.

Run it daily beside django-oauth-toolkit's ``cleartokens``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone
from oauth2_provider.models import get_refresh_token_model

from identity.app_settings import app_settings
from identity.models import AuthorizationRecord, ConsentRequest


class Command(BaseCommand):
    help = "Delete expired interactions and consent requests, and authorization records of finished token families."

    def handle(self, *args: Any, **options: Any) -> None:
        from experience.models import Interaction

        now = timezone.now()
        interactions, _ = Interaction.objects.filter(expires_at__lt=now).delete()
        cutoff = now - timedelta(seconds=app_settings.REFRESH_TOKEN_ABSOLUTE_SECONDS)
        live_families = get_refresh_token_model().objects.filter(revoked__isnull=True).values("token_family")
        records, _ = (
            AuthorizationRecord.objects.filter(created_at__lt=cutoff)
            .exclude(family__in=live_families)
            .delete()
        )
        consent_requests, _ = ConsentRequest.objects.filter(created_at__lt=now - ConsentRequest.TTL).delete()
        self.stdout.write(f"Deleted {interactions} expired interactions, {consent_requests} expired consent requests "
                          f"and {records} finished authorizations.")
