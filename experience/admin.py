"""Admin: the audit trail (read-only), interactions, known devices, the default experience, and the
final User admin (identity's people page completed with second factors, linked authenticators and
audit events: see :func:`people_user_admin` and identity.people_admin)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable
from typing import Any, cast
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import models
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, reverse
from django.urls import path as url_path
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET
from django_otp.plugins.otp_totp.models import TOTPDevice
from oauth2_provider.models import get_application_model

import identity.admin  # noqa: F401  the User admin this module completes is registered first
from authenticators.admin import UserAuthenticatorInline
from authenticators.models import Authenticator, BackupCode, SecondFactorState
from experience import access, audit, branding, configuration, mfa, policy, preview
from experience.models import (
    IMAGE_FIELDS,
    ApplicationExperience,
    AuditEvent,
    Experience,
    Interaction,
    KnownDevice,
)
from experience.policy import describe, resolve
from identity import application_admin
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


# -- the sign-in experiences: the default one and each application's overrides --------------------------

def split_list(value: str) -> list[str]:
    """A textarea's entries: one per line, or separated by commas or spaces."""
    return [item for item in re.split(r"[\s,]+", value) if item]


class ListField(forms.CharField):
    """A list of names, one per line (or comma-separated), cleaned to a list of strings; the rules
    of its entries are ``experience.configuration``'s (reported on this field by the model's clean)."""

    MAX_CHARACTERS = 100_000

    def __init__(self, *, separator: str = "\n", encoder: Any = None, decoder: Any = None, **kwargs: Any) -> None:
        # encoder and decoder: what a JSONField model field hands its form field
        self.separator = separator
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 3, "cols": 40}))
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        return self.separator.join(map(str, value)) if isinstance(value, (list, tuple)) else value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = super().to_python(value) or ""
        if len(text) > self.MAX_CHARACTERS:
            raise ValidationError(_("At most %(count)d characters.") % {"count": self.MAX_CHARACTERS})
        return split_list(text)


class ImageUploadField(forms.FileField):
    """A branding image: a new upload is checked by ``experience.branding.image_file`` (its real type
    sniffed, at most MAX_IMAGE_BYTES, an SVG without scripts, handlers or external references) and
    cleaned to the checked file under a random name; clearing it (False) or keeping it pass through."""

    def clean(self, data: Any, initial: Any = None) -> Any:
        value = super().clean(data, initial)
        if isinstance(value, UploadedFile):
            return branding.image_file(value)  # ValidationError: a field error naming the reason
        return value


def language_choices() -> list[tuple[str, Any]]:
    return [("", _("Site default (%(code)s)") % {"code": settings.LANGUAGE_CODE}), *settings.LANGUAGES]


def model_fields(fields: dict[str, str | dict[str, str]]) -> list[str]:
    """The model fields behind ``Experience.FIELDS``, in document order."""
    return [name for value in fields.values() for name in ([value] if isinstance(value, str) else value.values())]


class ExperienceAdminForm(forms.ModelForm):
    """The default experience's policies; the rules are ``experience.configuration``'s (via the model's clean)."""

    authenticators = ListField(
        label=_("authenticators"), separator=", ", widget=forms.TextInput(attrs={"size": 60}),
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
    language = forms.ChoiceField(label=_("default language"), required=False, choices=language_choices,
                                 help_text=Experience._meta.get_field("language").help_text)

    class Meta:
        model = Experience
        fields = model_fields(Experience.FIELDS)
        field_classes = {name: ListField for name in access.LIST_KEYS}
        help_texts = {name: _("One per line (or separated by commas); empty: no rule.")
                      for name in ("email_domains_deny", "ip_deny", "regions_deny")}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = self.instance.authenticators
        if names is None:  # not chosen yet: what the sign-in page shows now (first factors)
            names = configuration.shown_by_default()
        self.initial["authenticators"] = ", ".join(names)
        with_available_methods(self.fields["authenticators"])


def with_available_methods(field: forms.Field) -> None:
    """The authenticators field's help gains the names it may list."""
    # Second factors are not sign-in methods: the two-factor section chooses them.
    available = ", ".join(f"{a.name} ({a.title}{'' if a.enabled else ', ' + str(_('disabled'))})"
                          for a in Authenticator.objects.order_by("sort_order", "name")
                          if a.type is None or a.type.is_first_factor)
    field.help_text = format_html("{} {}", field.help_text, _("Available: %(names)s.") % {"names": available or "-"})


# The form sections of both admins (the application's adds nothing else: the same values, optional).
EXPERIENCE_FIELDSETS: list[tuple[Any, Any]] = [
    (None, {"fields": ["authenticators", "sign_in_url"]}),
    (_("Branding"), {"fields": model_fields({"branding": Experience.FIELDS["branding"]})}),
    (_("Language"), {"fields": ["language"]}),
    (_("Sign-up"), {"fields": ["sign_up_enabled", "sign_up_identifiers", "sign_up_verify"]}),
    (_("Password policy"), {"fields": ["password_min_length", "password_blocklist", "password_similarity"]}),
    (_("Two-factor authentication"), {"fields": ["mfa_policy", "mfa_factors"]}),
    (_("Captcha"), {"fields": ["captcha_policy"]}),
    (_("Access rules"), {"fields": list(access.LIST_KEYS), "description": _(
        "Who may sign in: a deny list refuses what it names; a non-empty allow list refuses everything it "
        "does not name.")}),
]
IMAGE_UPLOADS: dict[type[models.Field[Any, Any]], dict[str, Any]] = {models.FileField: {"form_class": ImageUploadField}}
SOURCES = {"application": _("this application"), "default": _("default experience"), "built-in": _("built-in")}


def shown_value(value: Any) -> str:
    """A document value as the admin shows it."""
    if value is None:  # authenticators without a list
        return gettext("every enabled sign-in method")
    if isinstance(value, bool):
        return gettext("yes") if value else gettext("no")
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or gettext("(none)")
    return str(value) if value != "" else gettext("(empty)")


def effective_table(client_id: str) -> str:
    """``experience.policy.effective(client_id)`` as a table: each value and where it comes from, then
    the sign-in methods the page shows (the listed ones that are enabled), and the preview links."""
    rows = format_html_join("", '<tr><th scope="row"><code>{}</code></th><td>{}</td><td>{}</td></tr>',
                            ((path, shown_value(value), SOURCES.get(source, source))
                             for path, value, source in policy.effective(client_id)))
    shown = shown_value([a.name for a in resolve(client_id).first_factors()])
    name = "admin:experience_applicationexperience_preview"
    url = reverse(name, args=[client_id]) if client_id else reverse(name + "_default")
    application = get_application_model().objects.filter(client_id=client_id).first() if client_id else None
    simulator = reverse("admin:experience_experience_simulate") + (f"?application={application.pk}" if application else "")
    return format_html(
        '<table class="portcullis-effective"><thead><tr><th scope="col">{}</th><th scope="col">{}</th>'
        '<th scope="col">{}</th></tr></thead><tbody>{}</tbody></table>'
        '<p class="portcullis-shown">{} <strong>{}</strong></p>'
        '<p>{} <a href="{}?scheme=light" target="_blank" rel="noopener">{}</a> · '
        '<a href="{}?scheme=dark" target="_blank" rel="noopener">{}</a></p><p><a href="{}">{}</a></p>',
        _("value"), _("now"), _("comes from"), rows, _("Sign-in methods shown:"), shown,
        _("Preview the sign-in page:"), url, _("light"), url, _("dark"), simulator,
        _("Simulate the access rules (who may sign in, and why)"))


@admin.register(Experience)
class ExperienceAdmin(admin.ModelAdmin):
    """One row (the default experience): the list goes straight to it."""

    form = ExperienceAdminForm
    formfield_overrides = IMAGE_UPLOADS
    readonly_fields = ["effective", "public_document"]
    fieldsets = [*EXPERIENCE_FIELDSETS,
                 (_("Effective experience"), {"fields": ["effective", "public_document"]})]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not Experience.objects.filter(key=Experience.DEFAULT).exists()

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        row = Experience.objects.filter(key=Experience.DEFAULT).first()
        if row is None:
            return HttpResponseRedirect(reverse("admin:experience_experience_add"))
        return HttpResponseRedirect(reverse("admin:experience_experience_change", args=[row.pk]))

    @admin.display(description=_("what applications get now"))
    def effective(self, obj: Experience | None) -> str:
        return format_html('{}<div class="help">{}</div>', effective_table(""), _(
            "Applications without overrides get exactly this; an application's own values (Application "
            "sign-in experiences) replace these one by one. Saved changes apply at once."))

    @admin.display(description=_("as the Experience API returns it"))
    def public_document(self, obj: Experience | None) -> str:
        """SPEC §5's public document (no access rules: the server applies them)."""
        return format_html('<pre class="readonly">{}</pre>', json.dumps(describe(resolve("")), indent=2, ensure_ascii=False))


# -- an application's overrides: the default form's fields, each optional (empty: inherit) ------------

SITE_DEFAULT = "-"  # the language choice that means "the site's LANGUAGE_CODE" ("" is inherit)
MISSING = object()
# form field name -> its document path, for every value but the images (the model's FileFields)
OVERRIDE_PATHS: dict[str, tuple[str, ...]] = {
    name: (key,) if isinstance(fields, str) else (key, sub)
    for key, fields in Experience.FIELDS.items()
    for sub, name in ({"": fields} if isinstance(fields, str) else fields).items()
    if name not in IMAGE_FIELDS
}


def value_at(document: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(document, dict) or key not in document:
            return MISSING
        document = document[key]
    return document


def _coerce_bool(value: str) -> bool:
    return value == "true"


def _coerce_choice(value: str) -> str:
    return "" if value == SITE_DEFAULT else value


def optional_field(base: forms.Field) -> forms.Field:
    """The default form's field as an override: never required, empty (or "inherit") inherits."""
    common: dict[str, Any] = {"label": base.label, "required": False, "help_text": base.help_text}
    if isinstance(base, forms.BooleanField):
        return forms.TypedChoiceField(choices=[("", _("inherit")), ("true", _("yes")), ("false", _("no"))],
                                      coerce=_coerce_bool, empty_value=None, **common)
    if isinstance(base, forms.MultipleChoiceField):
        return forms.MultipleChoiceField(choices=base.choices, widget=forms.CheckboxSelectMultiple, **common)
    if isinstance(base, forms.ChoiceField):
        choices = [(value or SITE_DEFAULT, label) for value, label in cast(Iterable[tuple[str, Any]], base.choices) if value or label != "---------"]
        return forms.TypedChoiceField(choices=[("", _("inherit")), *choices], coerce=_coerce_choice,
                                      empty_value=None, **common)
    field = copy.deepcopy(base)
    field.required = False
    return field


def initial_of(field: forms.Field, value: Any) -> Any:
    """A stored override as its optional field shows it."""
    if isinstance(field, forms.TypedChoiceField) and isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(field, forms.TypedChoiceField) and value == "":
        return SITE_DEFAULT
    return value


class ApplicationExperienceAdminForm(forms.ModelForm):
    """An application's overrides. Every value of the default experience is an optional field here;
    EMPTY MEANS INHERIT: a field left empty (or "inherit") is absent from the stored ``overrides``,
    so the application follows the default as it changes. The partial document the non-empty
    fields make is checked by ``experience.configuration.validate_overrides`` (the rule of
    ``portcullis_config apply`` too), each problem on its field."""

    class Meta:
        model = ApplicationExperience
        fields = ["application", *IMAGE_FIELDS]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        default = configuration.current_default()
        stored = self.instance.overrides if self.instance.pk else {}
        if "authenticators" in self.fields:
            with_available_methods(self.fields["authenticators"])
        for name, path in OVERRIDE_PATHS.items():
            if name not in self.fields:
                continue
            field = self.fields[name]
            inherited = shown_value(value_at(default, path))
            field.help_text = format_html("{} <em>{}</em>", field.help_text,
                                          _("Empty: inherits the default, now: %(value)s.") % {"value": inherited})
            value = value_at(stored, path)
            if value is not MISSING:
                self.initial[name] = initial_of(field, value)
            if value in ("", []) and not isinstance(field, forms.TypedChoiceField):  # e.g. from ``apply``
                field.help_text = format_html("{} <strong>{}</strong>", field.help_text, _(
                    "Stored: an empty override. Saved with this field empty, it inherits instead."))

    def overrides(self) -> dict[str, Any]:
        """The partial document of the fields that are not empty."""
        document: dict[str, Any] = {}
        for name, path in OVERRIDE_PATHS.items():
            value = self.cleaned_data.get(name)
            explicit = isinstance(self.fields.get(name), forms.TypedChoiceField)  # "inherit" is None there
            if value is None or (value in ("", []) and not explicit):
                continue
            if len(path) == 1:
                document[path[0]] = value
            else:
                document.setdefault(path[0], {})[path[1]] = value
        return document

    def clean(self) -> dict[str, Any]:
        super().clean()
        overrides = self.overrides()
        problems = configuration.Problems()
        configuration.validate_overrides(overrides, "", problems)
        for path, message in problems:
            name = Experience().field_of(path)
            self.add_error(name if name in self.fields else None, configuration.field_message(overrides, path, message))
        self.instance.overrides = overrides
        return self.cleaned_data

    def _update_errors(self, errors: ValidationError) -> None:
        # The model's clean checks ``overrides`` again (for code that saves rows): what it finds is
        # already on this form's fields; should it find something else, it is a form-wide error.
        error_dict = getattr(errors, "error_dict", None)
        if error_dict is not None and "overrides" in error_dict:
            messages = error_dict.pop("overrides")
            if not self.errors:
                error_dict.setdefault(NON_FIELD_ERRORS, []).extend(messages)
            if not error_dict:
                return
        super()._update_errors(errors)  # type: ignore[misc]


for _name in OVERRIDE_PATHS:  # the same fields as the default's, optional (no second copy of them)
    ApplicationExperienceAdminForm.base_fields[_name] = ApplicationExperienceAdminForm.declared_fields[_name] = \
        optional_field(ExperienceAdminForm.base_fields[_name])


class OverriddenFilter(admin.SimpleListFilter):
    title = _("overrides")
    parameter_name = "overrides"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [(key, key) for key in Experience.FIELDS] + [("-", _("nothing (inherits everything)"))]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        value = self.value()
        images = Q(logo="") & Q(logo_dark="") & Q(favicon="")
        if value == "-":
            return queryset.filter(images, overrides={})
        if value == "branding":
            return queryset.filter(Q(overrides__has_key="branding") | ~images)
        if value in Experience.FIELDS:
            return queryset.filter(overrides__has_key=value)
        return queryset


def overridden_paths(row: ApplicationExperience) -> list[str]:
    """The document paths the row sets (its images too), in document order."""
    document = row.document()
    return [key if isinstance(fields, str) else f"{key}.{name}"
            for key, fields in Experience.FIELDS.items() if key in document
            for name in ([key] if isinstance(fields, str) else fields) if isinstance(fields, str) or name in document[key]]


@admin.register(ApplicationExperience)
class ApplicationExperienceAdmin(admin.ModelAdmin):
    """Each application's own values over the default experience; its effective experience; the
    preview of its sign-in page."""

    form = ApplicationExperienceAdminForm
    formfield_overrides = IMAGE_UPLOADS
    list_display = ["application", "client_id", "what_it_overrides", "updated_at", "preview_links"]
    list_filter = [OverriddenFilter, "updated_at"]
    search_fields = ["application__name", "application__client_id"]
    list_select_related = ["application"]
    ordering = ["application__name"]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list[tuple[Any, Any]]:
        return [(None, {"fields": ["application"], "description": _(
            "Every value below is optional: a field left empty (or “inherit”) follows the default sign-in "
            "experience, now and as it changes.")}),
            *EXPERIENCE_FIELDSETS, (_("Effective experience"), {"fields": ["effective"]})]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["application", "effective"] if obj is not None else ["effective"]

    @admin.display(description=_("client ID"), ordering="application__client_id")
    def client_id(self, obj: ApplicationExperience) -> str:
        return obj.application.client_id

    @admin.display(description=_("what it overrides"))
    def what_it_overrides(self, obj: ApplicationExperience) -> str:
        return ", ".join(overridden_paths(obj)) or gettext("nothing (inherits everything)")

    @admin.display(description=_("preview"))
    def preview_links(self, obj: ApplicationExperience) -> str:
        url = reverse("admin:experience_applicationexperience_preview", args=[obj.application.client_id])
        return format_html('<a href="{}?scheme=light">{}</a> · <a href="{}?scheme=dark">{}</a>',
                           url, _("light"), url, _("dark"))

    @admin.display(description=_("what its users get now"))
    def effective(self, obj: ApplicationExperience | None) -> str:
        if obj is None or not obj.pk:
            return gettext("Saved, the application's effective experience is shown here.")
        return format_html('{}<div class="help">{}</div>', effective_table(obj.application.client_id), _(
            "“this application”: its own value above; “default experience”: inherited from the default "
            "sign-in experience; “built-in”: no default experience is saved."))

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(require_GET(self.preview_view))
        return [url_path("preview/", view, name="experience_applicationexperience_preview_default"),
                url_path("preview/<str:client_id>/", view, name="experience_applicationexperience_preview"),
                *super().get_urls()]

    def preview_view(self, request: HttpRequest, client_id: str = "") -> HttpResponse:
        """The application's sign-in page as its users see it, signing in disabled (``experience.preview``)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        application = None
        if client_id:
            application = get_application_model().objects.filter(client_id=client_id).first()
            if application is None:
                raise Http404
        return preview.render_preview(request, application, request.GET.get("scheme", ""))


def application_links(request: HttpRequest, application: Any) -> list[tuple[str, str]]:
    """The application change page's links to its experience (identity's CHANGE_PAGE_LINKS seam)."""
    model_admin = admin.site._registry.get(ApplicationExperience)
    if model_admin is None:
        return []
    links: list[tuple[str, str]] = []
    row = ApplicationExperience.objects.filter(application=application).first()
    if row is not None and model_admin.has_view_permission(request, row):
        links.append((gettext("Sign-in experience"),
                      reverse("admin:experience_applicationexperience_change", args=[row.pk])))
    elif row is None and model_admin.has_add_permission(request):
        links.append((gettext("Customise sign-in experience"),
                      reverse("admin:experience_applicationexperience_add") + f"?application={application.pk}"))
    if model_admin.has_view_permission(request):
        links.append((gettext("Preview sign-in page"),
                      reverse("admin:experience_applicationexperience_preview", args=[application.client_id])))
    return links


if application_links not in application_admin.CHANGE_PAGE_LINKS:
    application_admin.CHANGE_PAGE_LINKS.append(application_links)


# The access rules' simulator (experience.access_admin): /admin/experience/experience/simulate/.
from experience.access_admin import with_simulator  # noqa: E402

ExperienceAdmin.get_urls = with_simulator(ExperienceAdmin.get_urls)  # type: ignore[assignment,method-assign]


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
