"""Admin: the audit trail (read-only), interactions, known devices, the default experience, and the
final User admin (identity's people page completed with second factors, linked authenticators and
audit events: see :func:`people_user_admin` and identity.people_admin)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django_otp.plugins.otp_totp.models import TOTPDevice

import identity.admin  # noqa: F401  the User admin this module completes is registered first
from authenticators.admin import UserAuthenticatorInline
from authenticators.models import Authenticator, BackupCode, SecondFactorState
from experience import audit, configuration, mfa
from experience.models import AuditEvent, Experience, Interaction, KnownDevice
from experience.policy import describe, resolve
from identity.people_admin import (
    PeopleAction,
    PeopleAdminMixin,
    UserRecordInline,
    action_link,
    action_url,
    row,
)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The audit trail, browsable and read-only: nobody adds, changes or deletes an event here. Filters: event, application, date, authenticator, reason; a
    user's or an IP address's events are one click away (their cells link to ``?user__id__exact=``
    and ``?ip=``), and the search looks in identifiers, usernames, e-mail addresses, applications
    and IP addresses."""

    list_display = ["created_at", "kind", "identifier", "user_link", "authenticator", "client_id", "ip_link", "reason"]
    list_filter = ["kind", "client_id", ("created_at", admin.DateFieldListFilter), "authenticator", "reason"]
    search_fields = ["identifier", "client_id", "ip", "user__username", "user__email"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]
    list_select_related = ["user"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("user"), ordering="user")
    def user_link(self, obj: AuditEvent) -> str:
        if obj.user_id is None:
            return "-"
        return format_html('<a href="?{}" title="{}">{}</a>', urlencode({"user__id__exact": obj.user_id}),
                           _("This user's events"), obj.user)

    @admin.display(description=_("IP address"), ordering="ip")
    def ip_link(self, obj: AuditEvent) -> str:
        if not obj.ip:
            return "-"
        return format_html('<a href="?{}" title="{}">{}</a>', urlencode({"ip": obj.ip}), _("Events from this address"), obj.ip)


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


class ExperienceAdminForm(forms.ModelForm):
    """The default experience's policies; the rules are ``experience.configuration``'s (via the model's clean)."""

    authenticators = forms.CharField(
        label=_("authenticators"), max_length=2000,
        help_text=_("Names of the authenticators shown on the sign-in page, in display order, separated by commas."),
    )
    sign_up_identifiers = forms.MultipleChoiceField(
        label=_("sign-up identifiers"), required=False, widget=forms.CheckboxSelectMultiple,
        choices=[("email", _("E-mail")), ("phone", _("Phone number")), ("username", _("Username"))],
        help_text=_("What a new account is identified by (at least one)."),
    )
    mfa_factors = forms.MultipleChoiceField(
        label=_("second factors"), required=False, widget=forms.CheckboxSelectMultiple,
        choices=[("totp", _("Authenticator app (TOTP)")), ("backup_code", _("Backup codes")),
                 ("email_code", _("Code by e-mail")), ("sms_code", _("Code by SMS"))],
        help_text=_("The second factors users may use and enrol. When two-factor is required, one besides "
                    "the e-mail code."),
    )

    class Meta:
        model = Experience
        fields = ["authenticators", "sign_up_enabled", "sign_up_identifiers", "sign_up_verify", "password_min_length",
                  "password_blocklist", "password_similarity", "mfa_policy", "mfa_factors", "captcha_policy",
                  "sign_in_url"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = self.instance.authenticators
        if names is None:  # not chosen yet: what the sign-in page shows now (first factors)
            names = configuration.shown_by_default()
        self.initial["authenticators"] = ", ".join(names)
        # Second factors are not sign-in methods: the two-factor section below chooses them.
        available = ", ".join(f"{a.name} ({a.title}{'' if a.enabled else ', ' + str(_('disabled'))})"
                              for a in Authenticator.objects.order_by("sort_order", "name")
                              if a.type is None or a.type.is_first_factor)
        field = self.fields["authenticators"]
        field.help_text = format_html("{} {}", field.help_text, _("Available: %(names)s.") % {"names": available or "-"})

    def clean_authenticators(self) -> list[str]:
        return [name for name in re.split(r"[\s,]+", self.cleaned_data["authenticators"]) if name]


@admin.register(Experience)
class ExperienceAdmin(admin.ModelAdmin):
    """One row (the default experience): the list goes straight to it."""

    form = ExperienceAdminForm
    readonly_fields = ["effective"]
    fieldsets = [
        (None, {"fields": ["authenticators", "sign_in_url"]}),
        (_("Sign-up"), {"fields": ["sign_up_enabled", "sign_up_identifiers", "sign_up_verify"]}),
        (_("Password policy"), {"fields": ["password_min_length", "password_blocklist", "password_similarity"]}),
        (_("Two-factor authentication"), {"fields": ["mfa_policy", "mfa_factors"]}),
        (_("Captcha"), {"fields": ["captcha_policy"]}),
        (_("Effective experience"), {"fields": ["effective"]}),
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not Experience.objects.filter(key=Experience.DEFAULT).exists()

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        row = Experience.objects.filter(key=Experience.DEFAULT).first()
        if row is None:
            return HttpResponseRedirect(reverse("admin:experience_experience_add"))
        return HttpResponseRedirect(reverse("admin:experience_experience_change", args=[row.pk]))

    @admin.display(description=_("what applications get now"))
    def effective(self, obj: Experience | None) -> str:
        """The experience as the sign-in pages and the Experience API apply it (SPEC §5's document)."""
        document = describe(resolve(""))
        return format_html('<pre class="readonly">{}</pre><div class="help">{}</div>',
                           json.dumps(document, indent=2, ensure_ascii=False),
                           _("Every application gets the default experience; the authenticators listed are the "
                             "enabled ones it shows. Saved changes apply at once."))


# -- the user's page: identity's part, with second factors, linked authenticators and audit events -------
class TOTPDeviceInline(UserRecordInline):
    model = TOTPDevice
    readonly_fields = ("name", "confirmed", "created_at", "last_used_at", "remove")
    fields = readonly_fields
    verbose_name_plural = _("Authenticator apps (TOTP)")

    @admin.display(description=_("remove"))
    def remove(self, obj: Any) -> str:
        return action_link(obj.user_id, "remove-totp", obj.pk, gettext("Remove…"))


class BackupCodeInline(UserRecordInline):
    model = BackupCode
    readonly_fields = ("created_at", "used_at")
    fields = readonly_fields
    verbose_name_plural = _("Backup codes (only whether each was used: the codes are not stored)")


class SecondFactorStateInline(UserRecordInline):
    model = SecondFactorState
    readonly_fields = ("authenticator", "failures", "disabled_at", "last_used_at")
    fields = readonly_fields
    verbose_name_plural = _("Second-factor failures")


ADMIN_AUDIT_KINDS = {"sign-out-everywhere": AuditEvent.SIGNED_OUT_EVERYWHERE, "end-session": AuditEvent.SESSION_ENDED,
                     "revoke-refresh-token": AuditEvent.TOKEN_REVOKED, "revoke-consent": AuditEvent.CONSENT_REVOKED}


def people_user_admin(base: type[Any]) -> type[Any]:
    """The final User admin: identity's (``base``, a ``PeopleAdminMixin``) with what identity cannot
    know: second factors (removable one by one, or all at once with **reset MFA**), linked
    authenticators, and an audit event for every action (the seam is described in
    identity.people_admin)."""

    class PeopleUserAdmin(base):
        people_inlines = [*base.people_inlines, TOTPDeviceInline, BackupCodeInline, SecondFactorStateInline,
                          UserAuthenticatorInline]

        def people_actions(self) -> dict[str, Any]:
            return {**super().people_actions(), "reset-mfa": self.reset_mfa, "remove-totp": self.remove_totp,
                    "remove-backup-codes": self.remove_backup_codes}

        def people_tools(self, request: HttpRequest, user: Any) -> list[tuple[str, str]]:
            tools = [*super().people_tools(request, user), (action_url(user, "reset-mfa"), gettext("Reset MFA"))]
            if BackupCode.objects.filter(user=user).exists():
                tools.append((action_url(user, "remove-backup-codes"), gettext("Remove backup codes")))
            events = reverse("admin:experience_auditevent_changelist") + "?" + urlencode({"user__id__exact": user.pk})
            return [*tools, (events, gettext("Audit events"))]

        def people_action_done(self, request: HttpRequest, user: Any, action: str, prepared: PeopleAction,
                               message: str) -> None:
            super().people_action_done(request, user, action, prepared, message)
            if action in ADMIN_AUDIT_KINDS:  # the factors' removals are recorded by experience.mfa
                audit.record(request, ADMIN_AUDIT_KINDS[action], user=user, identifier=user.get_username(),
                             client_id=prepared.client_id, reason="admin")

        def reset_mfa(self, request: HttpRequest, user: Any, target: str) -> PeopleAction:
            if target:
                raise Http404

            def perform() -> str:
                removed = mfa.reset_factors(request, user)
                if not removed:
                    return gettext("%(user)s had no second factor; their factors' failure counts are cleared.") % {
                        "user": user.get_username()}
                return gettext("Removed every second factor of %(user)s.") % {"user": user.get_username()}

            return PeopleAction(
                gettext("Reset the two-factor authentication of %(user)s?") % {"user": user.get_username()},
                gettext("Their authenticator apps and backup codes are removed, and the failure counts of every "
                        "factor cleared. Their next sign-in asks for no second factor, unless two-factor "
                        "authentication is required: then they set one up during it. Do this only once you "
                        "are sure who is asking (they lost their phone, say)."),
                gettext("Reset MFA"), perform)

        def remove_totp(self, request: HttpRequest, user: Any, target: str) -> PeopleAction:
            device = row(TOTPDevice.objects.filter(user=user), target)

            def perform() -> str:
                mfa.remove_factors(request, user, [mfa.TOTP], device=device, reason="admin")
                return gettext("Removed the authenticator app “%(name)s” of %(user)s.") % {
                    "name": device.name, "user": user.get_username()}

            return PeopleAction(
                gettext("Remove the authenticator app “%(name)s” of %(user)s?") % {
                    "name": device.name, "user": user.get_username()},
                gettext("Its codes stop working at once. Backup codes, if any, still do."),
                gettext("Remove the app"), perform)

        def remove_backup_codes(self, request: HttpRequest, user: Any, target: str) -> PeopleAction:
            if target:
                raise Http404

            def perform() -> str:
                mfa.remove_factors(request, user, [mfa.BACKUP_CODE], reason="admin")
                return gettext("Removed the backup codes of %(user)s.") % {"user": user.get_username()}

            return PeopleAction(
                gettext("Remove the backup codes of %(user)s?") % {"user": user.get_username()},
                gettext("None of their backup codes works any more; they can make new ones on their account page."),
                gettext("Remove the codes"), perform)

    PeopleUserAdmin.__name__ = PeopleUserAdmin.__qualname__ = "PeopleUserAdmin"
    return PeopleUserAdmin


User = get_user_model()
if admin.site.is_registered(User) and isinstance(admin.site._registry[User], PeopleAdminMixin):
    registered = type(admin.site._registry[User])
    admin.site.unregister(User)
    admin.site.register(User, people_user_admin(registered))
