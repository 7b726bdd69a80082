"""Admin: DOT's application admin gains our per-application settings inline; keys rotate here."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.utils.translation import gettext_lazy as _
from oauth2_provider.models import get_application_model

from identity import keys
from identity.application_admin import ApplicationAdminMixin
from identity.forms import ProfileForm, identifier_checked
from identity.models import (
    ApplicationSettings,
    AuthorizationRecord,
    Consent,
    Profile,
    SigningKey,
    SignInIdentifier,
    UserSession,
)
from identity.people_admin import PeopleAdminMixin

Application = get_application_model()


class ApplicationSettingsInline(admin.StackedInline):
    model = ApplicationSettings
    can_delete = False
    verbose_name_plural = _("Portcullis settings")


ApplicationAdminBase = type(admin.site._registry[Application]) if Application in admin.site._registry else admin.ModelAdmin


class ApplicationAdmin(ApplicationAdminMixin, ApplicationAdminBase):  # type: ignore[misc, valid-type]
    inlines = [*getattr(ApplicationAdminBase, "inlines", []), ApplicationSettingsInline]


if Application in admin.site._registry:
    admin.site.unregister(Application)
admin.site.register(Application, ApplicationAdmin)


@admin.register(SigningKey)
class SigningKeyAdmin(admin.ModelAdmin):
    list_display = ["kid", "active", "created_at", "retired_at"]
    readonly_fields = ["kid", "active", "created_at", "retired_at"]
    exclude = ["private_pem"]
    actions = ["rotate_keys"]

    def has_add_permission(self, request: Any) -> bool:
        return False

    @admin.action(description=_("Rotate: make a new active key (old ones stay published until their tokens expire)"))
    def rotate_keys(self, request: Any, queryset: Any) -> None:
        key = keys.rotate()
        self.message_user(request, _("New active signing key %(kid)s.") % {"kid": key.kid}, messages.SUCCESS)


@admin.register(Consent)
class ConsentAdmin(admin.ModelAdmin):
    list_display = ["user", "application", "scopes", "created_at", "updated_at"]
    search_fields = ["user__username", "user__email", "application__name"]
    raw_id_fields = ["user"]


@admin.register(AuthorizationRecord)
class AuthorizationRecordAdmin(admin.ModelAdmin):
    list_display = ["user", "application", "auth_time", "amr", "created_at", "redeemed_at"]
    readonly_fields = ["grant", "family", "application", "user", "auth_time", "amr", "acr", "sid", "created_at", "redeemed_at"]

    def has_add_permission(self, request: Any) -> bool:
        return False


class ProfileInline(admin.StackedInline):
    model = Profile
    form = ProfileForm
    can_delete = False
    readonly_fields = ["subject"]
    verbose_name_plural = _("Identity profile")


@admin.register(SignInIdentifier)
class SignInIdentifierAdmin(admin.ModelAdmin):
    """Read-only: the index follows the accounts. Filter by "held by several accounts" to find legacy
    collisions, then change the identifier on all accounts but one."""

    list_display = ["key", "kinds", "user", "duplicate"]
    list_filter = ["duplicate"]
    search_fields = ["key"]
    readonly_fields = ["key", "kinds", "user", "duplicate"]

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False



User = get_user_model()
if User in admin.site._registry and isinstance(admin.site._registry[User], UserAdmin):
    BaseUserAdmin = type(admin.site._registry[User])

    class PortcullisUserAdmin(PeopleAdminMixin, BaseUserAdmin):  # type: ignore[misc, valid-type]
        """Django's user admin with the identity profile, and the people part (identity.people_admin):
        sessions, refresh tokens, consents and their actions. ``experience/admin.py`` subclasses it
        and registers the final class with second factors, linked authenticators and audit events."""

        inlines = [*BaseUserAdmin.inlines, ProfileInline]
        form = identifier_checked(BaseUserAdmin.form)
        add_form = identifier_checked(getattr(BaseUserAdmin, "add_form"))  # noqa: B009  (a UserAdmin)

    admin.site.unregister(User)
    admin.site.register(User, PortcullisUserAdmin)


@admin.register(UserSession)
class UserSessionAdmin(admin.ModelAdmin):
    """Every recorded browser session, read-only; each user's page lists theirs and ends them."""

    list_display = ["user", "fingerprint", "created_at", "last_seen_at", "ip", "user_agent"]
    search_fields = ["user__username", "user__email", "ip"]
    readonly_fields = ("user", "fingerprint", "created_at", "last_seen_at", "ip", "user_agent")
    fields = readonly_fields

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False  # deleting the row would not end the session: the user's page does
