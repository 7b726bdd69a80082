"""Rebuild the sign-in identifier index from the accounts, and list identifiers several accounts hold.

Needed after changes that skip model saves (``QuerySet.update``, ``bulk_create``, SQL imports);
until then sign-in by a changed identifier fails closed. Safe to run at any time."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from identity.identifiers import rebuild_index


class Command(BaseCommand):
    help = "Rebuild the sign-in identifier index; list identifiers held by several accounts."

    def handle(self, *args: Any, **options: Any) -> None:
        rows = rebuild_index()
        shared: dict[str, list[Any]] = {}
        for user_id, key, _kinds, duplicate in rows:
            if duplicate:
                shared.setdefault(key, []).append(user_id)
        self.stdout.write(f"{len(rows)} sign-in identifiers indexed.")
        if not shared:
            return
        names = dict(get_user_model()._default_manager.filter(
            pk__in=[pk for pks in shared.values() for pk in pks]).values_list("pk", get_user_model().USERNAME_FIELD))
        self.stdout.write(self.style.WARNING(
            f"{len(shared)} identifiers are held by several accounts; signing in by them is refused until "
            "all accounts but one change them:"))
        for key, user_ids in sorted(shared.items()):
            self.stdout.write(f"  {key}: " + ", ".join(f"{names.get(pk, pk)} (id {pk})" for pk in sorted(user_ids, key=str)))
