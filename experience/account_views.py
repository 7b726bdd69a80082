"""Hosted pages of sign-up and forgot-password (thin over the engine: ``set_event``, ``send_code``,
``verify``, ``set_profile``, then ``experience.steps.advance``).

- ``/sign-in/<id>/create-account/`` and ``/sign-in/<id>/forgot-password/``: an address (e-mail or
  phone, by the code authenticators the experience offers), then the code sent to it. The code's
  handle stays in the session, so sending answers the same redirect for every address.
- ``/sign-in/<id>/profile/`` (gate ``profile_incomplete``): username when the experience's sign-up
  identifiers include it, name, and the password with its rules stated before typing.
- ``/sign-in/<id>/new-password/`` (gate ``new_password_required``): the new password.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters

from authenticators.models import Authenticator
from experience import accounts, captcha_page, code_tabs, errors, sso, steps, upstream
from experience import interaction as engine
from experience.errors import EngineError
from experience.gates import RequirementMissing, next_requirement
from experience.models import Interaction
from experience.passwords import MAX_LENGTH, describe_rules
from experience.policy import Policy, policy_for
from experience.steps import see_other
from identity.identifiers import PHONE_FIELD
from identity.views_base import View

PENDING_CODES = "portcullis_pending_codes"  # session: interaction id -> the code sent for it


# -- forms ------------------------------------------------------------------------------------------
class EmailForm(forms.Form):
    email = forms.EmailField(label=_("E-mail address"), max_length=254, widget=forms.EmailInput(
        attrs={"autocomplete": "email", "autocapitalize": "none", "spellcheck": "false"}))


class PhoneForm(forms.Form):
    phone_number = forms.CharField(
        label=_("Phone number"), max_length=32, help_text=_("In international format, e.g. +15551234567."),
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "tel"}))


class CodeForm(forms.Form):
    code = forms.CharField(label=_("Code"), max_length=12, widget=forms.TextInput(
        attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "spellcheck": "false"}))


def password_field(policy: Policy) -> forms.CharField:
    """A new password: its rules shown before typing, pasting allowed, nothing stripped."""
    return forms.CharField(label=_("New password"), max_length=MAX_LENGTH, strip=False, help_text=describe_rules(policy),
                           widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))


class NewPasswordForm(forms.Form):
    def __init__(self, policy: Policy, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["password"] = password_field(policy)


class ProfileForm(forms.Form):
    """Sign-up's profile: what the experience's identifiers ask for, a name, the password."""

    def __init__(self, policy: Policy, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        identifiers = policy.sign_up.identifiers
        if "username" in identifiers:
            self.fields["username"] = forms.CharField(label=_("Username"), max_length=150, widget=forms.TextInput(
                attrs={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"}))
        if not policy.sign_up.verify:  # addresses are verified by code otherwise (the sign-up page)
            if "email" in identifiers:
                self.fields["email"] = EmailForm.base_fields["email"]
            if "phone" in identifiers:
                self.fields[PHONE_FIELD] = PhoneForm.base_fields[PHONE_FIELD]
        self.fields["name"] = forms.CharField(label=_("Your name (optional)"), max_length=150, required=False,
                                              widget=forms.TextInput(attrs={"autocomplete": "name"}))
        self.fields["password"] = password_field(policy)


# -- helpers --------------------------------------------------------------------------------------------
def code_authenticators(policy: Policy, event: str) -> list[Authenticator]:
    """The experience's code-kind methods that can verify an address for ``event`` (sign-up: only
    addresses its identifiers ask for)."""
    found = [a for a in policy.first_factors() if a.type is not None and a.type.kind == "code"]
    if event == Interaction.SIGN_UP:
        kinds = {PHONE_FIELD: "phone", "email": "email"}
        found = [a for a in found if kinds[address_field(a)] in policy.sign_up.identifiers]
    return found


def address_field(authenticator: Authenticator) -> str:
    """Which address a code type sends to: ``phone_number`` when its sign-in form has that field
    (or, without a form, when it is an SMS type), ``email`` otherwise."""
    auth_type = authenticator.type
    form = auth_type.sign_in_form if auth_type is not None else None
    if form is not None:
        return PHONE_FIELD if PHONE_FIELD in form.base_fields else "email"
    return PHONE_FIELD if "sms" in authenticator.auth_type else "email"


def refusal(response: HttpResponse, error: EngineError) -> HttpResponse:
    """A page that shows a refusal; a rate limit says when to come back."""
    if error.kind == "rate_limited" and "retry_after" in error.data:
        response["Retry-After"] = str(int(error.data["retry_after"]))
    return response


def empty_with(form_class: type[forms.Form], error: EngineError) -> forms.Form:
    """An empty form that shows ``error`` (a step that failed without the form's own input)."""
    form = form_class(data={})
    form.is_valid()
    form.errors.clear()
    errors.add_to_form(form, error)
    return form


def advance(request: HttpRequest, interaction: Interaction, on_error: Any) -> HttpResponse:
    """``steps.advance``; a refusal at submit (an identifier taken meanwhile) goes back to the page."""
    try:
        return steps.advance(request, interaction)
    except engine.InteractionError as error:
        return steps.expired(request, interaction.uid, error)
    except EngineError as error:
        return on_error(error)


# -- address, then code -----------------------------------------------------------------------------------
@method_decorator([never_cache, csrf_protect, sensitive_post_parameters("code")], name="dispatch")
class AddressCodeView(View):
    """An address, then the code sent to it, for ``event`` (sign-up or forgot-password)."""

    event: ClassVar[str]
    template_name: ClassVar[str]
    url_name: ClassVar[str]

    def get(self, request: HttpRequest, uid: str) -> HttpResponseBase:
        interaction = steps.live(request, uid)
        if isinstance(interaction, HttpResponse):
            return interaction
        policy = policy_for(interaction.client_id, request)
        refused = self.refused(request, interaction, policy)
        if refused is not None:
            return refused
        pending = self.pending(request, interaction)
        if pending is not None and request.GET.get("change") is None:
            return self.render_code(request, interaction, pending, CodeForm())
        return self.render_address(request, interaction, policy, None)

    def post(self, request: HttpRequest, uid: str) -> HttpResponseBase:
        interaction = steps.live(request, uid)
        if isinstance(interaction, HttpResponse):
            return interaction
        policy = policy_for(interaction.client_id, request)
        refused = self.refused(request, interaction, policy)
        if refused is not None:
            return refused
        action = request.POST.get("action")
        if action == "verify":
            return self.verify(request, interaction)
        if action == "resend":
            return self.resend(request, interaction, policy)
        if action == "continue" and not self.authenticators(policy) and not self.needs_code(request, interaction):
            return self.start_without_code(request, interaction)
        return self.send(request, interaction, policy)

    # -- steps ------------------------------------------------------------------------------------------
    def send(self, request: HttpRequest, interaction: Interaction, policy: Policy) -> HttpResponseBase:
        authenticator = self.current(request, policy)
        if authenticator is None:
            return self.render_address(request, interaction, policy, None, status=400)
        field = address_field(authenticator)
        form = (PhoneForm if field == PHONE_FIELD else EmailForm)(data=request.POST)
        if not form.is_valid():
            return self.render_address(request, interaction, policy, form, status=400)
        address = form.cleaned_data[field]
        try:
            engine.set_event(request, interaction, self.event)
            sent = engine.send_code(request, interaction, authenticator, captcha_page.with_answer(request, {field: address}))
        except EngineError as error:
            if captcha_page.is_locked_out(request, error, address):
                return captcha_page.locked(request, error, interaction)  # 429 with Retry-After, known account or not
            if error.kind == "sso":  # this e-mail's organisation signs it in (and makes its account)
                return see_other(error.data["url"])
            form.add_error(None, code_tabs.send_error_message(error))
            return refusal(self.render_address(request, interaction, policy, form, status=error.status, error=error), error)
        self.remember(request, interaction, {"authenticator": authenticator.name, "code_id": sent.code_id,
                                             "field": field, "address": address})
        return see_other(reverse(self.url_name, args=[interaction.uid]))

    def resend(self, request: HttpRequest, interaction: Interaction, policy: Policy) -> HttpResponseBase:
        pending = self.pending(request, interaction)
        authenticator = self.by_name(policy, pending["authenticator"]) if pending else None
        if pending is None or authenticator is None:
            return see_other(reverse(self.url_name, args=[interaction.uid]))
        try:
            sent = engine.send_code(request, interaction, authenticator,
                                    captcha_page.with_answer(request, {pending["field"]: pending["address"]}))
        except EngineError as error:
            if captcha_page.is_locked_out(request, error, pending["address"]):
                return captcha_page.locked(request, error, interaction)
            form = empty_with(CodeForm, error)
            form.errors.clear()
            form.add_error(None, code_tabs.send_error_message(error))
            return refusal(self.render_code(request, interaction, pending, form, status=error.status, error=error), error)
        self.remember(request, interaction, {**pending, "code_id": sent.code_id})
        return see_other(reverse(self.url_name, args=[interaction.uid]))

    def verify(self, request: HttpRequest, interaction: Interaction) -> HttpResponseBase:
        policy = policy_for(interaction.client_id, request)
        pending = self.pending(request, interaction)
        authenticator = self.by_name(policy, pending["authenticator"]) if pending else None
        if pending is None or authenticator is None or interaction.event != self.event:
            return see_other(reverse(self.url_name, args=[interaction.uid]))
        form = CodeForm(data=request.POST)
        if not form.is_valid():
            return self.render_code(request, interaction, pending, form, status=400)
        try:
            engine.verify(request, interaction, authenticator, {"code_id": pending["code_id"], "code": form.cleaned_data["code"]})
        except engine.InteractionError as error:
            return steps.expired(request, interaction.uid, error)
        except EngineError as error:
            if error.kind == "rate_limited":
                return captcha_page.locked(request, error, interaction)  # the account is locked: 429 with Retry-After
            errors.add_to_form(form, error)
            exists = error.name == "account_exists"
            return self.render_code(request, interaction, pending, form, status=error.status, account_exists=exists)
        self.forget(request, interaction)
        return advance(request, interaction, lambda error: self.render_code(
            request, interaction, pending, empty_with(CodeForm, error), status=error.status))

    def start_without_code(self, request: HttpRequest, interaction: Interaction) -> HttpResponseBase:
        """A sign-up that verifies no address (username only): straight to the profile."""
        engine.set_event(request, interaction, self.event)
        return see_other(steps.step_url(interaction, "profile_incomplete"))

    # -- helpers ------------------------------------------------------------------------------------------
    def refused(self, request: HttpRequest, interaction: Interaction, policy: Policy) -> HttpResponse | None:
        return None

    def authenticators(self, policy: Policy) -> list[Authenticator]:
        return code_authenticators(policy, self.event)

    def by_name(self, policy: Policy, name: str) -> Authenticator | None:
        return next((a for a in self.authenticators(policy) if a.name == name), None)

    def current(self, request: HttpRequest, policy: Policy) -> Authenticator | None:
        found = self.authenticators(policy)
        wanted = request.POST.get("authenticator") or request.GET.get("authenticator")
        return next((a for a in found if a.name == wanted), found[0] if found else None)

    def pending(self, request: HttpRequest, interaction: Interaction) -> dict[str, str] | None:
        pending = (request.session.get(PENDING_CODES) or {}).get(interaction.uid)
        return pending if isinstance(pending, dict) and pending.get("event") == self.event else None

    def remember(self, request: HttpRequest, interaction: Interaction, pending: dict[str, str]) -> None:
        codes = dict(request.session.get(PENDING_CODES) or {})
        codes[interaction.uid] = {**pending, "event": self.event}
        request.session[PENDING_CODES] = dict(list(codes.items())[-5:])

    def forget(self, request: HttpRequest, interaction: Interaction) -> None:
        codes = dict(request.session.get(PENDING_CODES) or {})
        if codes.pop(interaction.uid, None) is not None:
            request.session[PENDING_CODES] = codes

    def render_address(self, request: HttpRequest, interaction: Interaction, policy: Policy, form: Any,
                       status: int = 200, error: EngineError | None = None) -> HttpResponse:
        tabs = self.authenticators(policy)
        current = self.current(request, policy)
        if form is None and current is not None:
            form = (PhoneForm if address_field(current) == PHONE_FIELD else EmailForm)()
        return steps.render_step(request, interaction, self.template_name, {
            "step": "address", "tabs": tabs, "current": current, "form": form,
            "without_code": not tabs and self.event == Interaction.SIGN_UP and not self.needs_code(request, interaction),
            **(captcha_page.context(request, interaction, error) if tabs else {"captcha": None}),
        }, status, form_action=upstream.form_targets(request, sso.redirect_authenticators(policy)))  # SSO routing

    def needs_code(self, request: HttpRequest, interaction: Interaction) -> bool:
        return accounts.needs_verified_address(engine.context(request, interaction))

    def render_code(self, request: HttpRequest, interaction: Interaction, pending: dict[str, str], form: Any,
                    status: int = 200, account_exists: bool = False, error: EngineError | None = None) -> HttpResponse:
        return steps.render_step(request, interaction, self.template_name, {
            "step": "code", "form": form, "address": pending["address"], "account_exists": account_exists,
            **captcha_page.context(request, interaction, error),  # "Resend code" sends: it may need one
        }, status)


class SignUpView(AddressCodeView):
    event = Interaction.SIGN_UP
    template_name = "experience/sign_up.html"
    url_name = "experience:sign-up"

    def refused(self, request: HttpRequest, interaction: Interaction, policy: Policy) -> HttpResponse | None:
        if policy.sign_up.enabled:
            return None
        return steps.render_step(request, interaction, "experience/sign_up_disabled.html",
                             {"message": EngineError("sign_up_disabled").message}, status=403)


class ForgotPasswordView(AddressCodeView):
    event = Interaction.FORGOT_PASSWORD
    template_name = "experience/forgot_password.html"
    url_name = "experience:forgot-password"


# -- profile and new password -------------------------------------------------------------------------------
@method_decorator([never_cache, csrf_protect, sensitive_post_parameters("password")], name="dispatch")
class PasswordStepView(View):
    """A page with a new password that ends in ``set_profile`` then ``steps.advance``."""

    template_name: ClassVar[str]
    gate: ClassVar[str]
    event: ClassVar[str]

    def form(self, policy: Policy, data: Any = None) -> forms.Form:
        raise NotImplementedError

    def get(self, request: HttpRequest, uid: str) -> HttpResponseBase:
        interaction = steps.live(request, uid)
        if isinstance(interaction, HttpResponse):
            return interaction
        early = self.too_early(request, interaction)
        if early is not None:
            return early
        return self.render(request, interaction, self.form(policy_for(interaction.client_id, request)))

    def post(self, request: HttpRequest, uid: str) -> HttpResponseBase:
        interaction = steps.live(request, uid)
        if isinstance(interaction, HttpResponse):
            return interaction
        if interaction.event != self.event:
            return see_other(self.start_url(interaction))
        form = self.form(policy_for(interaction.client_id, request), request.POST)
        if not form.is_valid():
            return self.render(request, interaction, form, status=400)
        try:
            engine.set_profile(request, interaction, {k: v for k, v in form.cleaned_data.items() if v != ""})
        except RequirementMissing as missing:
            return see_other(steps.step_url(interaction, missing.gate) if steps.has_page(missing.gate)
                             else self.start_url(interaction))
        except EngineError as error:
            errors.add_to_form(form, error)
            return self.render(request, interaction, form, status=error.status)

        def refused(error: EngineError) -> HttpResponse:
            errors.add_to_form(form, error)
            return self.render(request, interaction, form, status=error.status)

        return advance(request, interaction, refused)

    def too_early(self, request: HttpRequest, interaction: Interaction) -> HttpResponse | None:
        """Back to where the flow starts when this gate is not the next one."""
        if interaction.event != self.event:
            return see_other(self.start_url(interaction))
        requirement = next_requirement(engine.context(request, interaction))
        if requirement is None or requirement.code == self.gate:
            return None
        if steps.has_page(requirement.code):
            return see_other(steps.step_url(interaction, requirement.code))
        return see_other(self.start_url(interaction))

    def start_url(self, interaction: Interaction) -> str:
        raise NotImplementedError

    def render(self, request: HttpRequest, interaction: Interaction, form: Any, status: int = 200) -> HttpResponse:
        return steps.render_step(request, interaction, self.template_name, {"form": form}, status)


class ProfileView(PasswordStepView):
    template_name = "experience/profile.html"
    gate = "profile_incomplete"
    event = Interaction.SIGN_UP

    def form(self, policy: Policy, data: Any = None) -> forms.Form:
        return ProfileForm(policy, data=data)

    def too_early(self, request: HttpRequest, interaction: Interaction) -> HttpResponse | None:
        if interaction.event == Interaction.SIGN_UP and not accounts.needs_verified_address(
                engine.context(request, interaction)):
            return None  # a sign-up by username alone: the profile is where it identifies
        return super().too_early(request, interaction)

    def start_url(self, interaction: Interaction) -> str:
        return reverse("experience:sign-up", args=[interaction.uid])


class NewPasswordView(PasswordStepView):
    template_name = "experience/new_password.html"
    gate = "new_password_required"
    event = Interaction.FORGOT_PASSWORD

    def form(self, policy: Policy, data: Any = None) -> forms.Form:
        return NewPasswordForm(policy, data=data)

    def start_url(self, interaction: Interaction) -> str:
        return reverse("experience:forgot-password", args=[interaction.uid])

