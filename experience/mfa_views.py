"""Hosted pages of the second factor (part mfa): the second-factor step and the enrolment step of a
sign-in, and the account page where a signed-in user manages their factors. Thin over
``experience.mfa`` and ``experience.interaction``; no JavaScript."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters

from authenticators.models import Authenticator
from authenticators.types.totp import CodeForm
from experience import branding, errors, mfa, signed_in, steps
from experience import interaction as engine
from experience.errors import EngineError
from experience.gates import RequirementMissing, next_requirement
from experience.models import Interaction
from experience.steps import see_other
from identity.security import deny_framing
from identity.views_base import View

SECOND_FACTOR_GATE = "second_factor_required"
ENROLMENT_GATE = "mfa_enrolment_required"
SENT_CODES = "portcullis_mfa_codes"  # session: interaction id -> the e-mail code's handle


class PasswordForm(forms.Form):
    password = forms.CharField(label=_("Password"), max_length=4096, strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


def add_error(form: forms.Form, error: EngineError) -> None:
    """``errors.add_to_form``, also on a form that was never submitted (an error of another button)."""
    if not form.is_bound and not hasattr(form, "cleaned_data"):
        form.errors  # noqa: B018  an unbound form's (empty) errors, so that one can be added
        form.cleaned_data = {}
    errors.add_to_form(form, error)


def elsewhere(interaction: Interaction, requirement: Any) -> HttpResponse:
    """The page of a step other than this one (the sign-in page for identify and unknown gates)."""
    return see_other(steps.step_url(interaction, requirement.code))


# -- the second-factor step ------------------------------------------------------------------------------
@method_decorator([never_cache, csrf_protect, sensitive_post_parameters("code")], name="dispatch")
class SecondFactorView(View):
    template_name = "experience/second_factor.html"

    def get(self, request: HttpRequest, uid: str) -> HttpResponseBase:
        interaction = steps.live(request, uid)
        if isinstance(interaction, HttpResponse):
            return interaction
        ctx = engine.context(request, interaction)
        requirement = next_requirement(ctx)
        if requirement is not None and requirement.code != SECOND_FACTOR_GATE:
            return elsewhere(interaction, requirement)
        return self.render(request, interaction, self.current(request, ctx.second_factors), ctx.second_factors,
                           done=requirement is None)

    def post(self, request: HttpRequest, uid: str) -> HttpResponseBase:
        interaction = steps.live(request, uid)
        if isinstance(interaction, HttpResponse):
            return interaction
        if request.POST.get("action") == "continue":
            return self.advance(request, interaction)
        ctx = engine.context(request, interaction)
        methods = ctx.second_factors
        current = self.current(request, methods)
        if current is None:
            return self.render(request, interaction, None, methods, status=400)
        if request.POST.get("action") == "send":
            return self.send(request, interaction, current, methods)
        form = self.form_for(current, request.POST)
        if form is None or not form.is_valid():
            return self.render(request, interaction, current, methods, form=form, status=400)
        data = dict(form.cleaned_data)
        if current.auth_type == mfa.EMAIL_CODE:
            data["code_id"] = request.session.get(SENT_CODES, {}).get(interaction.uid, "")
        try:
            engine.verify_second_factor(request, interaction, current, data)
        except RequirementMissing as missing:
            return elsewhere(interaction, missing.requirement)
        except EngineError as error:
            add_error(form, error)
            return self.render(request, interaction, current, methods, form=form, status=error.status)
        self.forget_code(request, interaction)
        return self.advance(request, interaction)

    def send(self, request: HttpRequest, interaction: Interaction, current: Authenticator,
             methods: list[Authenticator]) -> HttpResponseBase:
        try:
            sent = mfa.send_second_factor_code(request, interaction, "email")
        except RequirementMissing as missing:
            return elsewhere(interaction, missing.requirement)
        except EngineError as error:
            form = self.form_for(current, None)
            if form is not None:
                add_error(form, error)
            return self.render(request, interaction, current, methods, form=form, status=error.status)
        codes = dict(request.session.get(SENT_CODES) or {})
        codes = dict(list(codes.items())[-4:])
        codes[interaction.uid] = sent.code_id
        request.session[SENT_CODES] = codes
        url = reverse("experience:second-factor", args=[interaction.uid])
        return see_other(f"{url}?{urlencode({'authenticator': current.name, 'sent': '1'})}")

    @staticmethod
    def forget_code(request: HttpRequest, interaction: Interaction) -> None:
        codes = dict(request.session.get(SENT_CODES) or {})
        if codes.pop(interaction.uid, None) is not None:
            request.session[SENT_CODES] = codes

    @staticmethod
    def advance(request: HttpRequest, interaction: Interaction) -> HttpResponseBase:
        try:
            return steps.advance(request, interaction)
        except engine.InteractionError as error:
            return steps.expired(request, interaction.uid, error)

    @staticmethod
    def current(request: HttpRequest, methods: list[Authenticator]) -> Authenticator | None:
        wanted = request.GET.get("authenticator") or request.POST.get("authenticator")
        for authenticator in methods:
            if authenticator.name == wanted:
                return authenticator
        strong = [a for a in methods if a.auth_type != mfa.EMAIL_CODE]
        choices = strong or methods
        return choices[0] if choices else None

    @staticmethod
    def form_for(authenticator: Authenticator | None, data: Any) -> forms.Form | None:
        auth_type = authenticator.type if authenticator is not None else None
        if auth_type is None or auth_type.sign_in_form is None:
            return None
        return auth_type.sign_in_form(data=data)

    def render(self, request: HttpRequest, interaction: Interaction, current: Authenticator | None,
               methods: list[Authenticator], *, form: forms.Form | None = None, done: bool = False,
               status: int = 200) -> HttpResponse:
        code_sent = bool(request.session.get(SENT_CODES, {}).get(interaction.uid))
        if form is None and current is not None:
            form = self.form_for(current, None)
        context = {"methods": methods, "current": current, "form": form, "done": done,
                   "is_email": current is not None and current.auth_type == mfa.EMAIL_CODE,
                   "code_sent": code_sent, "just_sent": request.GET.get("sent") == "1",
                   "other_method": next((method for method in methods if method != current), None)}
        return steps.render_step(request, interaction, self.template_name, context, status=status)


# -- the enrolment step ----------------------------------------------------------------------------------
@method_decorator([never_cache, csrf_protect, sensitive_post_parameters("code")], name="dispatch")
class EnrolView(View):
    template_name = "experience/mfa_enrol.html"

    def get(self, request: HttpRequest, uid: str) -> HttpResponseBase:
        interaction = steps.live(request, uid)
        if isinstance(interaction, HttpResponse):
            return interaction
        try:
            mfa.enrolment_context(request, interaction)
        except RequirementMissing as missing:
            return elsewhere(interaction, missing.requirement)
        return self.render(request, interaction, CodeForm())

    def post(self, request: HttpRequest, uid: str) -> HttpResponseBase:
        interaction = steps.live(request, uid)
        if isinstance(interaction, HttpResponse):
            return interaction
        action = request.POST.get("action")
        try:
            if action == "continue":
                return SecondFactorView.advance(request, interaction)
            if action == "backup_codes":
                codes = mfa.issue_backup_codes(request, interaction)
                return self.render(request, interaction, None, codes=codes)
            form = CodeForm(data=request.POST)
            if not form.is_valid():
                return self.render(request, interaction, form, status=400)
            try:
                mfa.confirm_totp(request, interaction, form.cleaned_data["code"])
            except RequirementMissing:
                raise
            except EngineError as error:
                add_error(form, error)
                return self.render(request, interaction, form, status=error.status)
        except RequirementMissing as missing:
            return elsewhere(interaction, missing.requirement)
        except EngineError as error:
            form = CodeForm()
            add_error(form, error)
            return self.render(request, interaction, form, status=error.status)
        return see_other(reverse("experience:mfa-enrol", args=[interaction.uid]))

    def render(self, request: HttpRequest, interaction: Interaction, form: forms.Form | None, *,
               codes: list[str] | None = None, status: int = 200) -> HttpResponse:
        enrolled = interaction.state.get(mfa.ENROLLED, [])
        policy = engine.context(request, interaction).policy
        offers_backup = any(a.auth_type == mfa.BACKUP_CODE for a in policy.second_factors())
        setup = None
        if mfa.TOTP not in enrolled and codes is None:
            try:
                setup = mfa.pending_totp(request, interaction) or mfa.start_totp(request, interaction)
            except EngineError as error:
                if form is None:
                    form = CodeForm()
                add_error(form, error)
        context = {"form": form, "setup": setup, "codes": codes, "totp_done": mfa.TOTP in enrolled,
                   "backup_done": mfa.BACKUP_CODE in enrolled, "offers_backup": offers_backup}
        return steps.render_step(request, interaction, self.template_name, context, status=status)


steps.STEP_PAGES[SECOND_FACTOR_GATE] = "experience:second-factor"
steps.STEP_PAGES[ENROLMENT_GATE] = "experience:mfa-enrol"


# -- the account page --------------------------------------------------------------------------------------
def account_page(request: HttpRequest, template: str, context: dict[str, Any], status: int = 200) -> HttpResponse:
    signed_in.use_language(request, None)
    return deny_framing(render(request, template, {**branding.for_client(request, ""), **context}, status=status))


def sign_in_first(request: HttpRequest) -> HttpResponse:
    url = f"{reverse('experience:sign-in-start')}?{urlencode({'next': request.get_full_path()})}"
    return deny_framing(HttpResponse(status=302, headers={"Location": url}))


@method_decorator([never_cache, csrf_protect], name="dispatch")
class AccountSecurityView(View):
    """``/account/security/``: the user's second factors; add an authenticator app, remove a factor
    (after re-authenticating), make new backup codes."""

    template_name = "experience/account_security.html"

    def get(self, request: HttpRequest) -> HttpResponseBase:
        user = mfa.signed_in_user(request)
        if user is None:
            return sign_in_first(request)
        return self.render(request, user)

    def post(self, request: HttpRequest) -> HttpResponseBase:
        user = mfa.signed_in_user(request)
        if user is None:
            return sign_in_first(request)
        action, factor = request.POST.get("action", ""), request.POST.get("factor", "")
        here = reverse("experience:account-security")
        try:
            if action == "remove" and factor in (mfa.TOTP, mfa.BACKUP_CODE):
                if not mfa.recently_reauthenticated(request, user):
                    return see_other(f"{reverse('experience:account-confirm')}?{urlencode({'then': f'remove:{factor}'})}")
                mfa.remove_factor(request, user, factor)
                messages.success(request, str(_("The second factor was removed.")))
                return see_other(here)
            if action == "backup_codes":
                if mfa.backup_codes_need_reauthentication(request, user):
                    return see_other(f"{reverse('experience:account-confirm')}?{urlencode({'then': 'backup_codes'})}")
                codes = mfa.regenerate_backup_codes(request, user)
                return self.render(request, user, codes=codes)
        except EngineError as error:
            return self.render(request, user, error=str(error.message), status=error.status)
        return self.render(request, user, status=400)

    def render(self, request: HttpRequest, user: Any, *, codes: list[str] | None = None, error: str = "",
               status: int = 200) -> HttpResponse:
        rows = mfa.account_factors(request, user)
        has_totp = any(row["auth_type"] == mfa.TOTP and row["enrolled"] for row in rows)
        has_codes = any(row["auth_type"] == mfa.BACKUP_CODE and row.get("unused") for row in rows)
        context = {"factors": rows, "codes": codes, "error": error, "can_add_totp": not has_totp and any(
            row["auth_type"] == mfa.TOTP for row in rows), "can_make_codes": has_totp or has_codes,
            "account": user.get_username()}
        return account_page(request, self.template_name, context, status=status)


@method_decorator([never_cache, csrf_protect, sensitive_post_parameters("code")], name="dispatch")
class AccountTotpView(View):
    """``/account/security/totp/``: add an authenticator app to a signed-in account."""

    template_name = "experience/account_totp.html"

    def get(self, request: HttpRequest) -> HttpResponseBase:
        user = mfa.signed_in_user(request)
        if user is None:
            return sign_in_first(request)
        return self.render(request, user, CodeForm())

    def post(self, request: HttpRequest) -> HttpResponseBase:
        user = mfa.signed_in_user(request)
        if user is None:
            return sign_in_first(request)
        form = CodeForm(data=request.POST)
        if not form.is_valid():
            return self.render(request, user, form, status=400)
        try:
            mfa.account_confirm_totp(request, user, form.cleaned_data["code"])
        except EngineError as error:
            add_error(form, error)
            return self.render(request, user, form, status=error.status)
        messages.success(request, str(_("The authenticator app was added. Make backup codes too.")))
        return see_other(reverse("experience:account-security"))

    def render(self, request: HttpRequest, user: Any, form: forms.Form, status: int = 200) -> HttpResponse:
        try:
            setup = mfa.account_start_totp(request, user)
        except EngineError as error:
            return account_page(request, "experience/account_security.html",
                                {"factors": mfa.account_factors(request, user), "error": str(error.message),
                                 "account": user.get_username()}, status=error.status)
        return account_page(request, self.template_name, {"form": form, "setup": setup}, status=status)


@method_decorator([never_cache, csrf_protect, sensitive_post_parameters("password", "code")], name="dispatch")
class AccountConfirmView(View):
    """``/account/security/confirm/``: re-authenticate (password, or a current second factor) before
    a factor is removed or backup codes are replaced; ``?then=`` names what follows."""

    template_name = "experience/account_confirm.html"

    def methods(self, request: HttpRequest, user: Any) -> list[Authenticator]:
        return [row["authenticator"] for row in mfa.account_factors(request, user)
                if row["enrolled"] and not row["disabled"] and row["auth_type"] != mfa.EMAIL_CODE]

    def form_for(self, method: str, methods: list[Authenticator], data: Any = None) -> forms.Form:
        for authenticator in methods:
            if authenticator.name == method and authenticator.type is not None and authenticator.type.sign_in_form:
                return authenticator.type.sign_in_form(data=data)
        return PasswordForm(data=data)

    def get(self, request: HttpRequest) -> HttpResponseBase:
        user = mfa.signed_in_user(request)
        if user is None:
            return sign_in_first(request)
        methods = self.methods(request, user)
        method = request.GET.get("method", "password")
        return self.render(request, methods, method, self.form_for(method, methods))

    def post(self, request: HttpRequest) -> HttpResponseBase:
        user = mfa.signed_in_user(request)
        if user is None:
            return sign_in_first(request)
        methods = self.methods(request, user)
        method = request.POST.get("method", "password")
        if method != "password" and method not in {a.name for a in methods}:
            method = "password"
        form = self.form_for(method, methods, request.POST)
        if not form.is_valid():
            return self.render(request, methods, method, form, status=400)
        try:
            mfa.reauthenticate(request, user, method, dict(form.cleaned_data))
            then = request.POST.get("then", "")
            if then.startswith("remove:") and then.split(":", 1)[1] in (mfa.TOTP, mfa.BACKUP_CODE):
                mfa.remove_factor(request, user, then.split(":", 1)[1])
                messages.success(request, str(_("The second factor was removed.")))
            elif then == "backup_codes":
                messages.info(request, str(_("Confirmed. You can now make new backup codes.")))
        except EngineError as error:
            add_error(form, error)
            return self.render(request, methods, method, form, status=error.status)
        return see_other(reverse("experience:account-security"))

    def render(self, request: HttpRequest, methods: list[Authenticator], method: str, form: forms.Form,
               status: int = 200) -> HttpResponse:
        then = request.GET.get("then") or request.POST.get("then", "")
        context = {"methods": methods, "method": method, "form": form, "then": then}
        return account_page(request, self.template_name, context, status=status)
