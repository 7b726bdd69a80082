"""The page the link opens: a button that finishes the sign-in through the engine.

A GET only shows the button. A POST checks the code (``experience.interaction.verify_code``),
then submits the interaction (``submit``): the user is signed in and sent on, to the client
application, or to the next step the sign-in still needs (a second factor, say). Two reasons for
the button rather than signing in on the GET: mail scanners and link previews open links, and would
spend a single-use link before its owner clicks it; and the POST carries the CSRF token of the
browser that asked for the link (the interaction belongs to that browser's session, so a link
forwarded to someone else opens nothing).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters

from experience import interaction as engine
from experience import steps
from experience.errors import EngineError
from experience.gates import RequirementMissing

TEMPLATE = "magic_link/finish.html"


@method_decorator([never_cache, csrf_protect, sensitive_post_parameters("code")], name="dispatch")
class FinishView(View):
    http_method_names = ["get", "post", "options"]

    def get(self, request: HttpRequest, uid: str) -> HttpResponseBase:
        interaction = steps.live(request, uid)  # this browser's live interaction, or the expired page
        if isinstance(interaction, HttpResponse):
            return interaction
        values = {"code_id": request.GET.get("code_id", "")[:64], "code": request.GET.get("code", "")[:20]}
        return steps.render_step(request, interaction, TEMPLATE, {"values": values})

    def post(self, request: HttpRequest, uid: str) -> HttpResponseBase:
        interaction = steps.live(request, uid)
        if isinstance(interaction, HttpResponse):
            return interaction
        data = {"code_id": request.POST.get("code_id", ""), "code": request.POST.get("code", "")}
        try:
            engine.verify_code(request, interaction, data)
            completed = engine.submit(request, interaction)
        except engine.InteractionError as error:
            return steps.expired(request, uid, error)
        except RequirementMissing as missing:  # signed in, but a second factor (or another step) is due
            return steps.see_other(steps.step_url(interaction, missing.gate))
        except EngineError as error:  # spent, expired, wrong: the sign-in page can send a new link
            context = {"error": error, "retry_url": engine.sign_in_page(request, interaction)}
            return steps.render_step(request, interaction, TEMPLATE, context, status=error.status)
        return steps.see_other(completed.redirect_to)
