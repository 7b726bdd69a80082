from __future__ import annotations

from django.contrib import admin

from experience.models import AuditEvent, Interaction


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "kind", "identifier", "user", "authenticator", "client_id", "ip", "reason"]
    list_filter = ["kind", "authenticator", "reason"]
    search_fields = ["identifier", "client_id", "ip"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


@admin.register(Interaction)
class InteractionAdmin(admin.ModelAdmin):
    list_display = ["uid", "event", "client_id", "created_at", "expires_at", "completed_at"]
    list_filter = ["event"]
    readonly_fields = ["uid", "event", "client_id", "state", "created_at", "expires_at", "completed_at"]

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False
