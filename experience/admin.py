from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from experience.models import AuditEvent, Interaction, KnownDevice


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "kind", "identifier", "user", "authenticator", "client_id", "ip", "reason"]
    list_filter = ["kind", "authenticator", "reason"]
    search_fields = ["identifier", "client_id", "ip"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Interaction)
class InteractionAdmin(admin.ModelAdmin):
    list_display = ["uid", "event", "client_id", "created_at", "expires_at", "completed_at"]
    list_filter = ["event"]
    readonly_fields = ["uid", "event", "client_id", "state", "created_at", "expires_at", "completed_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(KnownDevice)
class KnownDeviceAdmin(admin.ModelAdmin):
    """Browsers users signed in from; deleting one makes its next sign-in notified again."""

    list_display = ["user", "user_agent", "ip", "created_at", "last_seen_at"]
    search_fields = ["user__username", "user__email", "ip"]
    readonly_fields = ["user", "key", "user_agent", "ip", "created_at", "last_seen_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
