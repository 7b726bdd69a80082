"""Hosted pages: translate HTTP to engine calls and engine results to pages."""

from __future__ import annotations

from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters

from authenticators.models import Authenticator
from experience import access_control, captcha_page, code_tabs, errors, signed_in, sso, steps, upstream
from experience import interaction as engine
from experience.code_tabs import address_form, address_initial, code_step
from experience.errors import EngineError
from experience.gates import RequirementMissing
from experience.models import Interaction
from experience.policy import policy_for
from experience.steps import see_other
from identity import end_session
from identity.security import deny_framing
from identity.views_base import View


def sign_in_form_of(authenticator: Authenticator | None) -> type[forms.Form] | None:
    """The sign-in form of the authenticator's type, if it has one."""
    auth_type = authenticator.type if authenticator is not None else None
    return auth_type.sign_in_form if auth_type is not None else None


@method_decorator([never_cache, csrf_protect], name="dispatch")
class SignInStartView(View):
    """``/sign-in/`` without an interaction: sign in to Portcullis itself, then go to ``next``."""

    # No HEAD: Django would answer it with the GET handler, which starts an interaction.
    http_method_names = ["get", "options"]

    def get(self, request: HttpRequest) -> HttpResponseBase:
        already = signed_in.for_start(request, request.GET.get("next", ""))
        if already is not None:
            return already
        interaction = engine.start(request, next_url=request.GET.get("next", ""),
                                   login_hint=request.GET.get("login_hint", ""))
        return deny_framing(HttpResponse(status=302, headers={"Location": reverse("experience:sign-in", args=[interaction.uid])}))


@method_decorator([never_cache, csrf_protect, sensitive_post_parameters("password", "code")], name="dispatch")
class SignInView(View):
    template_name = "experience/sign_in.html"

    def get(self, request: HttpRequest, uid: str) -> HttpResponseBase:
        already = signed_in.for_interaction(request, uid)
        if already is not None:
            return already  # Back after signing in, another tab: continue, never an empty form
        try:
            interaction = engine.load(request, uid)
        except engine.InteractionError as error:
            return self.expired(request, uid, error)
        signed_in.use_language(request, interaction)
        try:  # a device the rules refuse is told so at once, not after typing a password
            access_control.enforce(request, interaction.client_id)
        except access_control.AccessDenied as error:
            return steps.denied(request, interaction, error)
        authenticators = self.authenticators(request, interaction)
        current = self.current(request, authenticators)
        button = self.button(request, interaction, request.GET.get("authenticator"))
        if button is not None:  # a redirect-type method's link (SPEC's ?authenticator=): go upstream
            return self.go_upstream(request, interaction, authenticators, current, button, status=302)
        return self.render(request, interaction, authenticators, current, self.fresh_form(request, interaction, current))

    def post(self, request: HttpRequest, uid: str) -> HttpResponseBase:
        try:
            interaction = engine.load(request, uid)
        except engine.InteractionError as error:
            return self.expired(request, uid, error)
        signed_in.use_language(request, interaction)  # before any message is made
        authenticators = self.authenticators(request, interaction)
        current = self.current(request, authenticators)
        if request.POST.get("action") == "redirect":  # a "Continue with ..." button
            button = self.button(request, interaction, request.POST.get("authenticator"))
            if button is None:
                return self.render(request, interaction, authenticators, current,
                                   self.fresh_form(request, interaction, current), status=400,
                                   notice=errors.ERRORS["disabled"].message)
            return self.go_upstream(request, interaction, authenticators, current, button, status=303)
        form_class = sign_in_form_of(current)
        if current is None or form_class is None:
            return self.render(request, interaction, authenticators, current, None, status=400)
        if request.POST.get("authenticator", current.name) != current.name:  # disabled, or not this application's
            return self.render(request, interaction, authenticators, current, self.fresh_form(request, interaction, current),
                               status=400, notice=errors.ERRORS["disabled"].message)
        if request.POST.get("action") in ("send", "resend") and current.type is not None and current.type.send_form:
            return self.send_code(request, interaction, authenticators, current)
        form = form_class(data=request.POST)
        if not form.is_valid():
            return self.render(request, interaction, authenticators, current, form, status=400)
        try:
            if interaction.event != Interaction.SIGN_IN:  # back from sign-up or forgot-password
                engine.set_event(request, interaction, Interaction.SIGN_IN)
            completed = engine.sign_in(request, interaction, current, captcha_page.with_answer(request, form.cleaned_data))
        except engine.InteractionError as error:
            return self.expired(request, uid, error)
        except RequirementMissing as missing:
            if steps.has_page(missing.gate):  # identified: the next step has a page of its own
                return see_other(steps.step_url(interaction, missing.gate))
            errors.add_to_form(form, missing)
            return self.render(request, interaction, authenticators, current, form, status=400)
        except access_control.AccessDenied as error:
            return steps.denied(request, interaction, error)
        except EngineError as error:
            if error.kind == "rate_limited":
                return captcha_page.locked(request, error, interaction)
            if error.kind == "sso":  # this e-mail's organisation signs it in: go there
                return see_other(error.data["url"])
            errors.add_to_form(form, error)
            return self.render(request, interaction, authenticators, current, form, status=400, error=error)
        return see_other(completed.redirect_to)

    # -- helpers -----------------------------------------------------------------------------------------
    @staticmethod
    def fresh_form(request: HttpRequest, interaction: Interaction, current: Authenticator | None) -> forms.Form | None:
        """The current tab's form as a GET shows it (a code tab: its address or its code step)."""
        step = code_step(request, interaction, current)
        if current is not None and step == "address":
            return address_form(current, initial=address_initial(interaction, current))
        if current is not None and step == "code":
            return code_tabs.code_form(current, code_tabs.pending(interaction, current))
        form_class = sign_in_form_of(current)
        return form_class(initial={"identifier": interaction.state.get("login_hint", "")}) if form_class else None

    @staticmethod
    def authenticators(request: HttpRequest, interaction: Interaction) -> list[Authenticator]:
        """The application's first factors that have a sign-in form (tabs), in its policy's order."""
        policy = policy_for(interaction.client_id, request)
        return [a for a in policy.first_factors() if sign_in_form_of(a) is not None]

    @staticmethod
    def current(request: HttpRequest, authenticators: list[Authenticator]) -> Authenticator | None:
        forms = authenticators
        wanted = request.GET.get("authenticator") or request.POST.get("authenticator")
        for authenticator in forms:
            if authenticator.name == wanted:
                return authenticator
        return forms[0] if forms else None

    @staticmethod
    def buttons(request: HttpRequest, interaction: Interaction) -> list[Authenticator]:
        """The application's redirect-type methods ("Continue with ..." buttons), in its policy's order."""
        return sso.redirect_authenticators(policy_for(interaction.client_id, request))

    def button(self, request: HttpRequest, interaction: Interaction, name: Any) -> Authenticator | None:
        return next((a for a in self.buttons(request, interaction) if a.name == name), None) if name else None

    def go_upstream(self, request: HttpRequest, interaction: Interaction, authenticators: list[Authenticator],
                    current: Authenticator | None, button: Authenticator, status: int) -> HttpResponseBase:
        """Start the sign-in with ``button``'s upstream for this interaction; the browser goes there."""
        try:
            url = upstream.begin(request, interaction, button)
        except EngineError as error:
            return self.render(request, interaction, authenticators, current,
                               self.fresh_form(request, interaction, current), status=error.status, notice=error.message)
        return deny_framing(HttpResponse(status=status, headers={"Location": url}))

    def send_code(self, request: HttpRequest, interaction: Interaction, authenticators: list[Authenticator],
                  current: Authenticator) -> HttpResponseBase:
        """A code tab's first step (the address form), or its "Resend code" to the address kept."""
        pending = code_tabs.pending(interaction, current)
        form: forms.Form
        if request.POST.get("action") == "resend":
            if pending is None:
                return see_other(code_tabs.tab_url(request, current, step="address"))
            form, data = code_tabs.code_form(current, pending), {pending["field"]: pending["to"]}
        else:
            form = address_form(current, data=request.POST)
            if not form.is_valid():
                return self.render(request, interaction, authenticators, current, form, status=400)
            data = dict(form.cleaned_data)
        try:
            sent = engine.send_code(request, interaction, current, captcha_page.with_answer(request, data))
        except engine.InteractionError as error:
            return self.expired(request, interaction.uid, error)
        except access_control.AccessDenied as error:
            return steps.denied(request, interaction, error)
        except EngineError as error:
            if error.kind == "sso":  # this e-mail's organisation signs it in: go there
                return see_other(error.data["url"])
            if not form.is_bound:  # the code form of a refused "Resend code": an error, no data
                form.full_clean()
                form.cleaned_data = {}
            form.add_error(None, code_tabs.send_error_message(error))
            response = self.render(request, interaction, authenticators, current, form, status=error.status, error=error)
            if "retry_after" in error.data:
                response["Retry-After"] = str(int(error.data["retry_after"]))
            return response
        code_tabs.remember(interaction, current, data, sent)
        return see_other(code_tabs.tab_url(request, current))

    def render(self, request: HttpRequest, interaction: Interaction, authenticators: list[Authenticator],
               current: Authenticator | None, form: Any, status: int = 200, notice: Any = None,
               error: EngineError | None = None) -> HttpResponse:
        step = code_step(request, interaction, current, form)
        buttons = self.buttons(request, interaction)
        context = {
            "tabs": authenticators,
            "buttons": buttons,
            "current": current,
            "form": form,
            "sign_up_enabled": policy_for(interaction.client_id, request).sign_up.enabled,
            "notice": notice,
            "step": step,
            **(code_tabs.context(request, interaction, current, authenticators) if step == "code" and current else {}),
            **captcha_page.context(request, interaction, error if form is not None else None),
        }
        return steps.render_step(request, interaction, self.template_name, context, status=status,
                                 form_action=upstream.form_targets(request, buttons))

    @staticmethod
    def expired(request: HttpRequest, uid: str, error: engine.InteractionError) -> HttpResponse:
        return steps.expired(request, uid, error)


@method_decorator([never_cache, csrf_protect], name="dispatch")
class SwitchAccountView(View):
    """The signed-in page's "Not you?": sign out (a POST with CSRF), then the same sign-in again."""

    def post(self, request: HttpRequest) -> HttpResponseBase:
        interaction = signed_in.owned_interaction(request, request.POST.get("interaction", ""))
        target = signed_in.switch_target(request, interaction, request.POST.get("next", ""))
        end_session.sign_out(request)
        return see_other(target)
