"""Which hosted page answers which gate: after a step, a page asks the engine to submit; the first
gate not met sends the browser (303) to the page that meets it.

A page module registers its gate here (``STEP_PAGES[gate] = "experience:<url name>"``, the URL
taking the interaction's id); a gate without a page of its own is answered on the sign-in page.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from experience import interaction as engine
from experience.gates import RequirementMissing
from experience.models import Interaction
from identity.security import deny_framing

# gate code -> URL name of the page that meets it (its one argument: the interaction's id).
STEP_PAGES: dict[str, str] = {
    "identify": "experience:sign-in",
    "captcha_required": "experience:sign-in",
    # part signup (experience/account_views.py)
    "profile_incomplete": "experience:profile",
    "new_password_required": "experience:new-password",
}


def see_other(url: str) -> HttpResponse:
    """303: after a POST that carried credentials the browser must GET the next page (never 307)."""
    return deny_framing(HttpResponse(status=303, headers={"Location": url}))


def has_page(gate: str) -> bool:
    return gate in STEP_PAGES and STEP_PAGES[gate] != "experience:sign-in"


def step_url(interaction: Interaction, gate: str) -> str:
    """The page for ``gate`` of ``interaction``."""
    return reverse(STEP_PAGES.get(gate, "experience:sign-in"), args=[interaction.uid])


def advance(request: HttpRequest, interaction: Interaction) -> HttpResponse:
    """After a step: submit; 303 to the client when every gate is met, else to the next gate's
    page. Raises InteractionError (the page shows its expired page)."""
    try:
        completed = engine.submit(request, interaction)
    except RequirementMissing as missing:
        return see_other(step_url(interaction, missing.gate))
    return see_other(completed.redirect_to)
