"""The redirect-type authenticators' way back: ``/auth/<authenticator>/callback`` (SPEC §4).

A thin face over ``experience.upstream``: the hosted pages' sign-in continues through the gates
(the second factor, enrolment, ...) and ends back at the client application; an API client's front
end gets ``?authenticator=<name>&code=<exchange code>`` at its registered redirect URI. Anything
that does not check out (no, a forged, an expired or a used state, an upstream ``error=``, an
unknown authenticator) answers a page with a way to start again, or the front end's redirect URI
with ``?authenticator=<name>&error=<code>``; never a 500, and nothing is linked or created.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache

from experience import branding, signed_in, steps, upstream
from experience import interaction as engine
from experience.access_control import AccessDenied
from experience.gates import RequirementMissing
from experience.models import Interaction
from experience.policy import policy_for
from identity.security import deny_framing
from identity.views_base import View


@method_decorator(never_cache, name="dispatch")
class CallbackView(View):
    """Where an upstream provider sends the browser back (the redirect URI registered there)."""

    http_method_names = ["get", "options"]

    def get(self, request: HttpRequest, name: str, *args: Any, **kwargs: Any) -> HttpResponse:
        params = {key: request.GET.get(key, "") for key in request.GET}
        try:
            finished = upstream.finish(request, name, params)
        except upstream.CallbackFailed as failed:
            return self.failed(request, failed)
        if finished.for_client:
            code = upstream.exchange_code(finished)
            return redirect(upstream.front_end_url(finished.record, code=code))
        return self.advance(request, finished.interaction)

    @staticmethod
    def advance(request: HttpRequest, interaction: Interaction) -> HttpResponse:
        """As after a password: every gate met, back to the client; else the next gate's page
        (an application's own sign-in page reads the next step itself)."""
        try:
            completed = engine.submit(request, interaction)
        except RequirementMissing as missing:
            if engine.is_local_path(policy_for(interaction.client_id, request).sign_in_url):
                return redirect(engine.sign_in_page(request, interaction))
            return redirect(steps.step_url(interaction, missing.gate))
        except engine.InteractionError as error:
            return steps.expired(request, interaction.uid, error)
        except AccessDenied as error:
            return steps.denied(request, interaction, error)
        return redirect(completed.redirect_to)

    @staticmethod
    def failed(request: HttpRequest, failed: upstream.CallbackFailed) -> HttpResponse:
        record = failed.record
        if record is not None and record.redirect:
            return redirect(upstream.front_end_url(record, error=failed.code))
        interaction = None
        if record is not None and record.interaction_id in request.session.get(engine.SESSION_KEY, []):
            interaction = record.interaction
        signed_in.use_language(request, interaction)
        context = {**branding.for_client(request, interaction.client_id if interaction is not None else ""),
                   "message": failed.message, "restart_url": engine.restart_url(interaction)}
        status = {"not_found": 404, "forbidden": 403}.get(failed.kind, 400)
        return deny_framing(render(request, "experience/upstream_error.html", context, status=status))


def redirect(url: str) -> HttpResponse:
    return deny_framing(HttpResponse(status=302, headers={"Location": url}))
