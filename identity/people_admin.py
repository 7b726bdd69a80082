"""The user's page in Django admin: what a person holds and the actions that end it.

identity's part (this module, mixed into the User admin by ``identity.admin``): the browser sessions
(:class:`~identity.models.UserSession`), the live refresh tokens with the application holding each,
the consents (granted applications), and the actions **sign out everywhere**, **end a session**,
**revoke a refresh token** and **revoke a consent**.

The seam for the other apps: identity must not import ``experience`` or ``authenticators``, so the
final User admin is assembled in ``experience/admin.py``, which subclasses the class registered here
(``PeopleAdminMixin`` is in its bases) and re-registers it with the second factors, the linked
authenticators, **reset MFA** and audit events. A subclass adds actions by extending
:meth:`PeopleAdminMixin.people_actions` and :meth:`people_tools`, and records what was done by
overriding :meth:`people_action_done` (identity writes the admin's own history, ``LogEntry``, which
names the administrator; experience adds an audit event).

Every action is a confirmation page (GET) and a POST with the admin's CSRF check, behind
``admin_view`` (staff only) and the user's change permission (403 without it); an unknown user, row
or action is a 404. Nothing here displays a token or a session key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from oauth2_provider.models import get_refresh_token_model

from identity import sessions, tokens
from identity.models import Consent, UserSession

RefreshToken = get_refresh_token_model()


@dataclass
class PeopleAction:
    """One action of the user's page, prepared for one user (and one of their rows)."""

    title: str  # the confirmation page's question
    explanation: str
    button: str
    perform: Callable[[], str]  # does it; answers the message shown and kept in the history
    client_id: str = ""  # the application concerned, if one is


def action_url(user: Any, action: str, target: Any = "") -> str:
    opts = get_user_model()._meta
    if target == "":
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_people", args=[quote(user.pk), action])
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_people_row", args=[quote(user.pk), action, str(target)])


def action_link(user_id: Any, action: str, target: Any, label: str) -> str:
    user = get_user_model()(pk=user_id)
    return format_html('<a class="button" href="{}">{}</a>', action_url(user, action, target), label)


def row(queryset: Any, target: str) -> Any:
    """The row ``target`` names in ``queryset`` (the user's own rows), or a 404."""
    if not target.isdigit() or len(target) > 18:
        raise Http404
    found = queryset.filter(pk=int(target)).first()
    if found is None:
        raise Http404
    return found


class UserRecordInline(admin.TabularInline):
    """A read-only list of the user's rows, shown to whoever may see the user; its actions are
    links to confirmation pages (a button inside the user's form would be its default button)."""

    extra = 0
    max_num = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        opts = get_user_model()._meta
        return any(request.user.has_perm(f"{opts.app_label}.{perm}_{opts.model_name}") for perm in ("view", "change"))


class UserSessionInline(UserRecordInline):
    model = UserSession
    readonly_fields = ("session", "created_at", "last_seen_at", "ip", "user_agent", "end")
    fields = readonly_fields
    verbose_name_plural = _("Browser sessions")

    @admin.display(description=_("session"))
    def session(self, obj: UserSession) -> str:
        return obj.fingerprint if sessions.is_open(obj) else gettext("%(session)s (ended)") % {"session": obj.fingerprint}

    @admin.display(description=_("sign out"))
    def end(self, obj: UserSession) -> str:
        return action_link(obj.user_id, "end-session", obj.pk, gettext("End this session…"))


class RefreshTokenInline(UserRecordInline):
    model = RefreshToken
    fk_name = "user"
    readonly_fields = ("application", "signed_in", "created", "expires", "revoke")
    fields = readonly_fields
    verbose_name = _("refresh token")
    verbose_name_plural = _("Active refresh tokens")

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).filter(revoked__isnull=True).select_related("application", "access_token")

    @admin.display(description=_("signed in"))
    def signed_in(self, obj: Any) -> Any:
        record = tokens.family_record(obj)
        return record.auth_time if record is not None else "-"

    @admin.display(description=_("expires"))
    def expires(self, obj: Any) -> Any:
        record = tokens.family_record(obj)
        if record is None or not tokens.refresh_token_alive(obj, record):
            return gettext("no longer refreshes")
        return tokens.refresh_token_expires_at(obj, record) or gettext("never")

    @admin.display(description=_("revoke"))
    def revoke(self, obj: Any) -> str:
        return action_link(obj.user_id, "revoke-refresh-token", obj.pk, gettext("Revoke…"))


class ConsentInline(UserRecordInline):
    model = Consent
    readonly_fields = ("application", "scopes", "created_at", "updated_at", "revoke")
    fields = readonly_fields
    verbose_name_plural = _("Granted applications (consents)")

    @admin.display(description=_("revoke"))
    def revoke(self, obj: Consent) -> str:
        return action_link(obj.user_id, "revoke-consent", obj.pk, gettext("Revoke…"))


class PeopleAdminMixin:
    """Mixed into the User admin (``self`` is a ModelAdmin); see the module's docstring."""

    people_template = "admin/identity/user/people_action.html"
    change_form_template = "admin/identity/user/change_form.html"
    people_inlines: list[Any] = [UserSessionInline, RefreshTokenInline, ConsentInline]

    def get_inlines(self, request: HttpRequest, obj: Any) -> list[Any]:
        inlines = list(super().get_inlines(request, obj))  # type: ignore[misc]
        return [*inlines, *self.people_inlines] if obj is not None else inlines

    def get_urls(self) -> list[URLPattern]:
        opts = self.model._meta  # type: ignore[attr-defined]
        view = self.admin_site.admin_view(self.people_action_view)  # type: ignore[attr-defined]
        name = f"{opts.app_label}_{opts.model_name}_people"
        return [path("<path:object_id>/people/<slug:action>/<str:target>/", view, name=f"{name}_row"),
                path("<path:object_id>/people/<slug:action>/", view, name=name),
                *super().get_urls()]  # type: ignore[misc]

    # -- what the page offers ---------------------------------------------------------------------------
    def people_actions(self) -> dict[str, Callable[[HttpRequest, Any, str], PeopleAction]]:
        """The actions by URL name: each prepares itself for a user and a target (its row's id or "")."""
        return {"sign-out-everywhere": self.sign_out_everywhere, "end-session": self.end_session,
                "revoke-refresh-token": self.revoke_refresh_token, "revoke-consent": self.revoke_consent}

    def people_tools(self, request: HttpRequest, user: Any) -> list[tuple[str, str]]:
        """The buttons above the user's form: (url, label)."""
        return [(action_url(user, "sign-out-everywhere"), gettext("Sign out everywhere"))]

    def people_action_done(self, request: HttpRequest, user: Any, action: str, prepared: PeopleAction,
                           message: str) -> None:
        """Record what was done: the admin's history of the user (who did it, and when)."""
        self.log_change(request, user, message)  # type: ignore[attr-defined]

    def render_change_form(self, request: HttpRequest, context: dict[str, Any], add: bool = False,
                           change: bool = False, form_url: str = "", obj: Any = None) -> HttpResponse:
        if obj is not None and obj.pk and self.has_change_permission(request, obj):  # type: ignore[attr-defined]
            context["people_tools"] = self.people_tools(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)  # type: ignore[misc]

    # -- the confirmation page and the POST ---------------------------------------------------------------
    def people_action_view(self, request: HttpRequest, object_id: str, action: str, target: str = "") -> HttpResponse:
        user = self.get_object(request, unquote(object_id))  # type: ignore[attr-defined]
        if user is None:
            raise Http404
        if not self.has_change_permission(request, user):  # type: ignore[attr-defined]
            raise PermissionDenied
        prepare = self.people_actions().get(action)
        if prepare is None:
            raise Http404
        prepared = prepare(request, user, target)
        opts = self.model._meta  # type: ignore[attr-defined]
        change_url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[quote(user.pk)])
        if request.method == "POST":
            with transaction.atomic():
                message = prepared.perform()
                self.people_action_done(request, user, action, prepared, message)
            self.message_user(request, message, messages.SUCCESS)  # type: ignore[attr-defined]
            return HttpResponseRedirect(change_url)
        context = {**self.admin_site.each_context(request), "opts": opts, "original": user,  # type: ignore[attr-defined]
                   "title": prepared.title, "action": prepared, "change_url": change_url}
        return TemplateResponse(request, self.people_template, context)

    # -- identity's actions ---------------------------------------------------------------------------
    def sign_out_everywhere(self, request: HttpRequest, user: Any, target: str) -> PeopleAction:
        if target:
            raise Http404

        def perform() -> str:
            counts = sessions.sign_out_everywhere(user)
            return gettext("Signed %(user)s out everywhere: %(sessions)d browser sessions ended, %(tokens)d refresh "
                           "tokens and every access token revoked.") % {
                "user": user.get_username(), "sessions": counts["sessions"], "tokens": counts["refresh_tokens"]}

        return PeopleAction(
            gettext("Sign %(user)s out everywhere?") % {"user": user.get_username()},
            gettext("Every browser session of this user ends at once, and every refresh and access token any "
                    "application holds for them is revoked, with their pending authorization codes. They can sign "
                    "in again with their credentials: to keep them out, change their password or disable the "
                    "account."),
            gettext("Sign out everywhere"), perform)

    def end_session(self, request: HttpRequest, user: Any, target: str) -> PeopleAction:
        found = row(UserSession.objects.filter(user=user), target)

        def perform() -> str:
            sessions.end_session(found)
            return gettext("Ended the browser session %(session)s of %(user)s.") % {
                "session": found.fingerprint, "user": user.get_username()}

        return PeopleAction(
            gettext("End the browser session %(session)s?") % {"session": found.fingerprint},
            gettext("That browser (%(agent)s, %(ip)s, signed in %(created)s) is signed out at once. Tokens "
                    "applications hold stay valid: revoke them below, or sign out everywhere.") % {
                "agent": found.user_agent or "-", "ip": found.ip or "-", "created": found.created_at},
            gettext("End the session"), perform)

    def revoke_refresh_token(self, request: HttpRequest, user: Any, target: str) -> PeopleAction:
        found = row(RefreshToken.objects.filter(user=user, revoked__isnull=True).select_related("application"), target)
        application = found.application

        def perform() -> str:
            tokens.revoke_refresh_token(found)
            return gettext("Revoked a refresh token of %(user)s for %(application)s.") % {
                "user": user.get_username(), "application": application}

        return PeopleAction(
            gettext("Revoke this refresh token of %(user)s for %(application)s?") % {
                "user": user.get_username(), "application": application},
            gettext("The application can no longer refresh it: the sign-in it came from ends for that application "
                    "(its access tokens are revoked too). Other applications and browser sessions are not affected."),
            gettext("Revoke the token"), perform, client_id=getattr(application, "client_id", ""))

    def revoke_consent(self, request: HttpRequest, user: Any, target: str) -> PeopleAction:
        found = row(Consent.objects.filter(user=user).select_related("application"), target)
        application = found.application

        def perform() -> str:
            tokens.revoke_user_tokens(user, application=application)
            found.delete()
            return gettext("Revoked the consent of %(user)s to %(application)s and its tokens.") % {
                "user": user.get_username(), "application": application}

        return PeopleAction(
            gettext("Revoke the consent of %(user)s to %(application)s?") % {
                "user": user.get_username(), "application": application},
            gettext("The application's tokens for this user are revoked, and the user is asked to consent again "
                    "the next time the application asks for their account (as when they revoke it themselves)."),
            gettext("Revoke the consent"), perform, client_id=application.client_id)
