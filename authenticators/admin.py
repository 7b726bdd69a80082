"""Admin of authenticators: a type picker, then the type's settings form as real fields.

An authenticator's **type is fixed once created** (as ``portcullis_config apply`` refuses a type
change): its options mean something only to that type, and the users linked to it are identities
under that type. To change the type, add a new authenticator and remove the old one.

- The add page (``.../add/``) without ``?auth_type=`` is the **type picker**: every registered
  type, each linking to ``.../add/?auth_type=<type>``.
- The add page of a type and the change page show the type's settings form (``settings_form``) as
  fields of the admin form, named ``options-<option>``; the settings form validates them (its own
  ``clean()`` and ``clean_<field>()`` included) and its errors are shown on those fields.
- **Secret options** (``AuthType.secret_options``) are write-only: rendered empty, never echoed
  back (not even after an error elsewhere), "leave blank to keep" once one is stored.
- A **redirect** type's change page shows the redirect URI to register upstream (the issuer +
  ``callback_path()``) and a **Test connection** button (``test_connection()``, each check shown as
  a message).
- A row whose type is not registered here (its package removed) opens, says so, and keeps its
  options as stored; it is skipped by every sign-in page and API (``authenticators.W002``).
"""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR, TO_FIELD_VAR
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect, QueryDict
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_post_parameters

from authenticators.base import RedirectAuth
from authenticators.models import Authenticator, BackupCode, SecondFactorState, UserAuthenticator
from authenticators.registry import AuthType, registry
from identity.people_admin import UserRecordInline

OPTION_PREFIX = "options"
KIND_TITLES = {
    "form": _("Sign-in form"),
    "code": _("One-time code"),
    "redirect": _("Upstream sign-in (redirect)"),
    "second_factor": _("Second factor"),
}


def option_field_name(option: str) -> str:
    """The admin form's name of a settings-form field (its HTML name too): ``options-<option>``."""
    return f"{OPTION_PREFIX}-{option}"


class SecretInput(forms.PasswordInput):
    """A secret option's input: always rendered empty (the stored value, or one just typed, never
    goes back to the browser)."""

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs={"autocomplete": "new-password", **(attrs or {})}, render_value=False)


class SecretTextarea(forms.Textarea):
    """A multi-line secret (a private key): rendered empty like :class:`SecretInput`."""

    def format_value(self, value: Any) -> None:
        return None


def secret_widget(widget: forms.Widget) -> forms.Widget:
    attrs = {key: value for key, value in widget.attrs.items() if key != "value"}
    return SecretTextarea(attrs=attrs) if isinstance(widget, forms.Textarea) else SecretInput(attrs=attrs)


def settings_fields(auth_type: AuthType | None, stored: dict[str, Any] | None) -> dict[str, forms.Field]:
    """The type's settings fields as admin form fields (copies, named ``options-<option>``); a secret
    gets a write-only widget and, once a value is stored, may be left blank to keep it."""
    if auth_type is None or auth_type.settings_form is None:
        return {}
    try:
        instance_fields = auth_type.settings_form(prefix=OPTION_PREFIX).fields  # after the form's own __init__
    except Exception:  # noqa: BLE001 - a third-party form that cannot be built unbound: its declared fields
        instance_fields = auth_type.settings_form.base_fields
    fields: dict[str, forms.Field] = {}
    for option, field in instance_fields.items():
        field = copy.deepcopy(field)
        if option in auth_type.secret_options:
            field.widget = secret_widget(field.widget)
            field.initial = None
            if stored and stored.get(option):
                field.required = False
                keep = gettext("A value is set (not shown). Leave blank to keep it; type a new one to replace it.")
                field.help_text = f"{field.help_text} {keep}".strip() if field.help_text else keep
        fields[option_field_name(option)] = field
    return fields


class AuthenticatorAdminForm(forms.ModelForm):
    """The common fields, plus the settings fields of :attr:`auth_type` (declared by the admin's
    ``get_form`` for that type); the type's settings form validates the options."""

    auth_type: AuthType | None = None  # the type of this form (fixed: see the module's docstring)
    type_name: str = ""  # the row's (or the add page's) type name, registered or not

    class Meta:
        model = Authenticator
        fields = ["name", "title", "description", "enabled", "sort_order"]
        help_texts = {
            "description": _("A note for administrators; users do not see it."),
            "enabled": _("Off: no sign-in page or API offers it."),
            "sort_order": _("Lower numbers come first where the sign-in experience does not set the order."),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cleaned_options: dict[str, Any] | None = None
        if self.instance.pk is None:
            self.instance.auth_type = self.type_name
            if self.auth_type is not None:
                self.initial.setdefault("title", str(self.auth_type.title))
                if not Authenticator.objects.filter(name=self.auth_type.name).exists():
                    self.initial.setdefault("name", self.auth_type.name)
            return
        auth_type = self.auth_type
        if auth_type is None or auth_type.settings_form is None:
            return
        stored = self.instance.options if isinstance(self.instance.options, dict) else {}
        current = auth_type.effective_options(stored) or stored  # stored options a form refuses: as stored
        for option, value in current.items():
            if option not in auth_type.secret_options and option_field_name(option) in self.fields:
                self.initial.setdefault(option_field_name(option), value)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        auth_type = self.auth_type
        if auth_type is None or auth_type.settings_form is None:
            return data  # no settings (or a type not registered here): the stored options stay
        stored = self.instance.options if self.instance.pk and isinstance(self.instance.options, dict) else {}
        # A copy of the POST (a multiple-choice option keeps its several values).
        submitted: Any = self.data.copy() if isinstance(self.data, QueryDict) else dict(self.data)
        for option in auth_type.secret_options:  # a secret left blank keeps the stored one
            key = option_field_name(option)
            if not str(submitted.get(key) or "").strip() and stored.get(option):
                submitted[key] = stored[option]
        settings_form = auth_type.settings_form(data=submitted, prefix=OPTION_PREFIX)
        if settings_form.is_valid():
            self.cleaned_options = dict(settings_form.cleaned_data)
            return data
        for option, errors in settings_form.errors.as_data().items():
            target = option_field_name(option)
            if option == "__all__" or target not in self.fields:
                self.add_error(None, errors)
            elif target not in self.errors:  # a field's own error is already shown once, by our copy
                self.add_error(target, errors)
        return data

    def save(self, commit: bool = True) -> Any:
        if self.cleaned_options is not None:
            self.instance.options = self.cleaned_options
        elif self.instance.pk is None and not self.instance.options:
            self.instance.options = {}
        return super().save(commit)


class KindFilter(admin.SimpleListFilter):
    """The kind of an authenticator's type: sign-in form, one-time code, upstream or second factor
    (an authenticator whose type is not registered here has no kind)."""

    title = _("kind")
    parameter_name = "kind"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return list(KIND_TITLES.items())

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        if self.value() is None:
            return queryset
        return queryset.filter(auth_type__in=[t.name for t in registry if t.kind == self.value()])


@admin.register(Authenticator)
class AuthenticatorAdmin(admin.ModelAdmin):
    form = AuthenticatorAdminForm
    list_display = ["title", "name", "auth_type", "kind_display", "enabled", "sort_order"]
    list_editable = ["enabled", "sort_order"]
    list_filter = [KindFilter, "auth_type", "enabled"]
    search_fields = ["name", "title", "description"]
    readonly_fields = ["type_display", "options_display"]
    change_form_template = "admin/authenticators/authenticator/change_form.html"
    picker_template = "admin/authenticators/authenticator/type_picker.html"

    # -- the type of the page ------------------------------------------------------------------------
    @staticmethod
    def type_name(request: HttpRequest, obj: Authenticator | None) -> str:
        return obj.auth_type if obj is not None else str(request.GET.get("auth_type", ""))

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        name = self.type_name(request, obj)
        auth_type = registry.get(name)
        stored = obj.options if obj is not None and isinstance(obj.options, dict) else {}
        attrs: dict[str, Any] = {**settings_fields(auth_type, stored), "auth_type": auth_type, "type_name": name,
                                 "__module__": __name__}
        kwargs["form"] = type("AuthenticatorAdminForm", (self.form,), attrs)
        return super().get_form(request, obj, change, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        name = self.type_name(request, obj)
        options = list(settings_fields(registry.get(name), None))
        common = (None, {"fields": ["name", "type_display", "title", "description", "enabled", "sort_order"]})
        if obj is not None and not self.has_change_permission(request, obj):
            options = ["options_display"] if obj.options else []  # read only: the values, secrets as "set"
        if not options:
            return [common]
        return [common, (_("Settings of the type"), {"fields": options})]

    @admin.display(description=_("type"))
    def type_display(self, obj: Authenticator) -> str:
        auth_type = obj.type
        if auth_type is None:
            return format_html(
                "<strong>{}</strong>",
                gettext("“%(type)s” is not registered in this installation (its package may have been removed): "
                        "this authenticator is not offered anywhere, and its stored options are kept as they are.")
                % {"type": obj.auth_type})
        return format_html("{} (<code>{}</code>) · {}", auth_type.title, auth_type.name,
                           KIND_TITLES.get(auth_type.kind, auth_type.kind))

    @admin.display(description=KindFilter.title)
    def kind_display(self, obj: Authenticator) -> str:
        auth_type = obj.type
        return str(KIND_TITLES.get(auth_type.kind, auth_type.kind)) if auth_type is not None else "-"

    @admin.display(description=_("options"))
    def options_display(self, obj: Authenticator) -> str:
        """The stored options for a reader who may not change them; a secret only says it is set
        (every option of a type not registered here, whose secrets are unknown)."""
        options = obj.options if isinstance(obj.options, dict) else {}
        auth_type = obj.type
        fields = auth_type.settings_form.base_fields if auth_type is not None and auth_type.settings_form else {}
        rows = []
        for option, value in options.items():
            secret = auth_type is None or option in auth_type.secret_options
            shown = gettext("set (not shown)") if secret and value else ("" if secret else json.dumps(value))
            field = fields.get(option)
            rows.append((field.label if field is not None and field.label else option, shown))
        return format_html_join("", "<div>{}: <code>{}</code></div>", rows) if rows else "-"

    # -- the type picker -------------------------------------------------------------------------------
    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None) -> Any:
        if registry.get(self.type_name(request, None)) is None:
            return self.type_picker(request)
        return super().add_view(request, form_url, extra_context)

    def type_picker(self, request: HttpRequest) -> HttpResponse:
        """Every registered type, each linking to the add page of that type."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        kept = {key: request.GET[key] for key in (IS_POPUP_VAR, TO_FIELD_VAR) if key in request.GET}
        types = [{"name": t.name, "title": t.title, "kind": KIND_TITLES.get(t.kind, t.kind),
                  "first_factor": t.is_first_factor, "url": "?" + urlencode({**kept, "auth_type": t.name})}
                 for t in sorted(registry, key=lambda t: (not t.is_first_factor, str(t.title).lower()))]
        wanted = str(request.GET.get("auth_type", ""))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": gettext("Choose the type of the new authenticator"),
            "types": types,
            "unknown": wanted,
            "has_view_permission": self.has_view_permission(request),
            "is_popup": IS_POPUP_VAR in request.GET,
        }
        return TemplateResponse(request, self.picker_template, context, status=404 if wanted else 200)

    # -- redirect types: the redirect URI and "Test connection" ------------------------------------------
    def render_change_form(self, request: HttpRequest, context: dict[str, Any], add: bool = False,
                           change: bool = False, form_url: str = "", obj: Any = None) -> Any:
        if obj is not None and obj.pk:
            context.update(self.redirect_context(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def redirect_context(self, request: HttpRequest, obj: Authenticator) -> dict[str, Any]:
        auth_type = obj.type
        if auth_type is None or auth_type.kind != "redirect":
            return {}
        opts = self.model._meta
        try:
            auth = obj.get_auth(request)
            uri = auth.redirect_uri(request) if isinstance(auth, RedirectAuth) else ""
        except NoReverseMatch:
            uri = ""  # the host project does not mount experience.urls: there is no callback yet
        return {"redirect_uri": uri,
                "test_connection_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_test_connection",
                                               args=[quote(obj.pk)])}

    def get_urls(self) -> list[URLPattern]:
        opts = self.model._meta
        test = path("<path:object_id>/test-connection/", self.admin_site.admin_view(self.test_connection_view),
                    name=f"{opts.app_label}_{opts.model_name}_test_connection")
        return [test, *super().get_urls()]

    def test_connection_view(self, request: HttpRequest, object_id: str) -> HttpResponseBase:
        """POST: run the type's ``test_connection()`` and show each check as a message; GET does
        nothing but lead back to the change page (a check reaches out to the upstream)."""
        opts = self.model._meta
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, opts, object_id)  # type: ignore[attr-defined]
        if not self.has_change_permission(request, obj):
            raise PermissionDenied
        change_url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[quote(obj.pk)])
        if request.method == "POST":
            for ok, message in self.connection_checks(request, obj):
                self.message_user(request, message, messages.SUCCESS if ok else messages.ERROR)
        return HttpResponseRedirect(change_url)

    @staticmethod
    def connection_checks(request: HttpRequest, obj: Authenticator) -> list[tuple[bool, str]]:
        auth_type = obj.type
        if auth_type is None or auth_type.kind != "redirect":
            return [(False, gettext("Only an upstream (redirect) authenticator of a registered type has a "
                                    "connection to test."))]
        try:
            auth = obj.get_auth(request)
            results = list(auth.test_connection()) if isinstance(auth, RedirectAuth) else []
        except Exception as error:  # noqa: BLE001 - a type's failure is a failed check, never a 500
            return [(False, gettext("The test failed: %(error)s") % {"error": type(error).__name__})]
        if not results:
            return [(True, gettext("This type has nothing to test: the connection is checked at the next sign-in."))]
        return [(bool(ok), str(message)) for ok, message in results]

    @method_decorator(sensitive_post_parameters())  # secret options travel in the POST
    def changeform_view(self, request: HttpRequest, object_id: str | None = None, form_url: str = "",
                        extra_context: dict[str, Any] | None = None) -> Any:
        return super().changeform_view(request, object_id, form_url, extra_context)


class UserAuthenticatorInline(UserRecordInline):
    """On the user's page (assembled by experience/admin.py): the identities they hold under
    authenticators (an upstream's ``sub``, a phone number). Unlinking is this model's own admin."""

    model = UserAuthenticator
    readonly_fields = ("authenticator", "uuid", "created_at")
    fields = readonly_fields


@admin.register(UserAuthenticator)
class UserAuthenticatorAdmin(admin.ModelAdmin):
    """Which users an authenticator knows, under which identity there (an upstream ``sub``, a phone
    number); searched by that identity, the user or the authenticator."""

    list_display = ["user", "authenticator", "uuid", "created_at"]
    list_filter = ["authenticator", "authenticator__auth_type", "created_at"]
    list_select_related = ["user", "authenticator"]
    search_fields = ["uuid", "user__username", "user__email", "authenticator__name", "authenticator__title"]
    raw_id_fields = ["user"]


# -- second factors (part mfa) -------------------------------------------------------------------------
class TOTPDeviceAdmin(admin.ModelAdmin):
    """Users' authenticator apps: seen and removed here, never shown (no key, no QR code: the key may
    be sealed, and an admin has no business seeing it). Users add them through the enrolment pages."""

    list_display = ["user", "name", "confirmed", "created_at", "last_used_at"]
    list_filter = ["confirmed"]
    search_fields = ["user__username", "user__email", "name"]
    raw_id_fields = ["user"]
    fields = ["user", "name", "confirmed", "created_at", "last_used_at"]
    readonly_fields = ["user", "created_at", "last_used_at"]

    def has_add_permission(self, request: Any) -> bool:
        return False


def _replace_totp_admin() -> None:
    from django_otp.plugins.otp_totp.models import TOTPDevice

    if admin.site.is_registered(TOTPDevice):
        admin.site.unregister(TOTPDevice)
    admin.site.register(TOTPDevice, TOTPDeviceAdmin)


_replace_totp_admin()


@admin.register(BackupCode)
class BackupCodeAdmin(admin.ModelAdmin):
    """Only whether each code was used; the codes themselves are not stored."""

    list_display = ["user", "created_at", "used_at"]
    search_fields = ["user__username", "user__email"]
    fields = ["user", "created_at", "used_at"]
    readonly_fields = ["user", "created_at", "used_at"]

    def has_add_permission(self, request: Any) -> bool:
        return False


@admin.register(SecondFactorState)
class SecondFactorStateAdmin(admin.ModelAdmin):
    """Consecutive failures per user and factor; clear "disabled" to enable a locked factor again."""

    list_display = ["user", "authenticator", "failures", "disabled_at", "last_used_at"]
    list_filter = ["authenticator", "disabled_at"]
    search_fields = ["user__username", "user__email"]
    fields = ["user", "authenticator", "failures", "disabled_at", "last_used_at"]
    readonly_fields = ["user", "authenticator", "last_used_at"]

    def has_add_permission(self, request: Any) -> bool:
        return False
