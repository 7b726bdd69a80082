"""Delete what has expired. Each installed app cleans its own rows: an app takes part by giving its
AppConfig a ``portcullis_cleanup(now) -> {what: count}`` method.

Run it daily (on any node, from cron) beside django-oauth-toolkit's ``cleartokens``.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand
from django.utils import timezone


class Command(BaseCommand):
    help = "Delete expired rows of every Portcullis app (interactions, finished authorizations, ...)."

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        for config in apps.get_app_configs():
            cleanup = getattr(config, "portcullis_cleanup", None)
            if cleanup is None:
                continue
            counts = cleanup(now)
            done = ", ".join(f"{count} {what}" for what, count in counts.items()) or "nothing"
            self.stdout.write(f"{config.label}: deleted {done}.")
