"""Enterprise single sign-on by e-mail domain: the one rule, in one place.

An e-mail whose domain is in ``domains()`` of an enabled redirect-type authenticator of the
application's experience signs in there, never with a password or a one-time code: the engine's
``verify`` and ``send_code`` call :func:`route` before anything else, and refuse with
``EngineError("sso_required", authenticator=<name>, url=<where that sign-in starts>)``. The rule
reads the e-mail's domain only, never the accounts, so the answer is the same whether or not an
account exists (and takes the same time).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest
from django.urls import reverse

from authenticators.base import RedirectAuth
from authenticators.models import Authenticator
from experience.errors import EngineError
from experience.models import Interaction
from experience.policy import Policy, policy_for

SESSION_KEY = "portcullis_interactions"  # experience.interaction.SESSION_KEY (that module imports this one)


def redirect_authenticators(policy: Policy) -> list[Authenticator]:
    """The experience's redirect-type first factors (buttons on the sign-in page), in its order."""
    return [a for a in policy.first_factors() if a.type is not None and a.type.kind == "redirect"]


def domain_of(identifier: str) -> str:
    """The domain of an e-mail address (lower case), or "" for anything else."""
    local, at, domain = identifier.strip().rpartition("@")
    return domain.lower().rstrip(".") if at and local and domain else ""


def authenticator_for(policy: Policy, identifier: str) -> Authenticator | None:
    """The SSO authenticator the e-mail ``identifier`` belongs to, or None."""
    domain = domain_of(identifier)
    if not domain:
        return None
    for authenticator in redirect_authenticators(policy):
        auth = authenticator.get_auth(None, policy=policy)
        if isinstance(auth, RedirectAuth) and domain in auth.domains():
            return authenticator
    return None


def start_url(request: HttpRequest, interaction: Interaction, authenticator: Authenticator) -> str:
    """Where the sign-in with ``authenticator`` starts for this interaction (absolute): the hosted
    page's link ``/sign-in/<id>/?authenticator=<name>`` when the interaction is this browser's (the
    hosted pages and the Experience API), else the API clients' ``authorize-url``."""
    session = getattr(request, "session", None)
    if session is not None and interaction.uid in session.get(SESSION_KEY, []):
        path = reverse("experience:sign-in", args=[interaction.uid])
        query = {"authenticator": authenticator.name}
    else:
        path = reverse("experience:api-auth-authorize-url", args=[authenticator.name])
        query = {"client_id": interaction.client_id}
    return request.build_absolute_uri(f"{path}?{urlencode(query)}")


def route(request: HttpRequest, interaction: Interaction, identifier: Any) -> None:
    """Refuse a password or code step for an e-mail of an SSO domain (``sso_required``). The e-mail
    is kept as the interaction's ``login_hint``, which the redirect passes upstream."""
    if not isinstance(identifier, str):
        return
    authenticator = authenticator_for(policy_for(interaction.client_id, request), identifier)
    if authenticator is None:
        return
    if interaction.state.get("login_hint") != identifier.strip()[:254]:
        interaction.state["login_hint"] = identifier.strip()[:254]
        interaction.save(update_fields=["state"])
    raise EngineError("sso_required", authenticator=authenticator.name,
                      url=start_url(request, interaction, authenticator))
