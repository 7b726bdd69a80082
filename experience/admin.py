from __future__ import annotations

import json
import re
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from authenticators.models import Authenticator
from experience import configuration
from experience.models import AuditEvent, Experience, Interaction, KnownDevice
from experience.policy import describe, resolve


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


# The access rules' simulator (experience.access_admin): /admin/experience/experience/simulate/.
from experience.access_admin import with_simulator  # noqa: E402

ExperienceAdmin.get_urls = with_simulator(ExperienceAdmin.get_urls)  # type: ignore[assignment,method-assign]
