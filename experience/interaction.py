"""The interaction engine: every face (hosted pages, Experience API, headless API) calls these
functions; the rules live here once.

An interaction is created when the provider needs the user to sign in. Each step records what it
verified; :func:`submit` checks the gates in their fixed order and, when all are met, signs the user
in and says where the browser goes next.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _

from authenticators.base import AuthError
from authenticators.models import Authenticator
from experience import audit
from experience.app_settings import app_settings
from experience.models import AuditEvent, Interaction
from identity import authentication
from identity.app_settings import app_settings as identity_settings

SESSION_KEY = "portcullis_interactions"


class InteractionError(Exception):
    """The interaction cannot be used: unknown, not this browser's, expired or finished."""

    messages = {
        "not_found": _("This sign-in page has expired. Go back to the application and start again."),
        "expired": _("This sign-in page has expired. Go back to the application and start again."),
        "completed": _("This sign-in has already finished. Go back to the application."),
    }

    def __init__(self, code: str) -> None:
        self.code = code
        self.message = self.messages[code]
        super().__init__(code)


class RequirementMissing(Exception):
    """Submit found a gate that is not met; ``gate`` names the next step for the face."""

    def __init__(self, gate: str) -> None:
        self.gate = gate
        super().__init__(gate)


@dataclass(frozen=True)
class Completed:
    redirect_to: str


# -- lifecycle ------------------------------------------------------------------------------------
def start(request: HttpRequest, event: str = Interaction.SIGN_IN, *, authorize_params: str = "",
          client_id: str = "", login_hint: str = "", next_url: str = "") -> Interaction:
    """A new interaction, bound to this browser session."""
    now = timezone.now()
    login_hint, next_url = printable(login_hint)[:254], printable(next_url)[:2000]
    interaction = Interaction.objects.create(
        uid=secrets.token_urlsafe(24),
        event=event,
        client_id=client_id,
        expires_at=now + timedelta(seconds=app_settings.INTERACTION_TTL),
        state={"authorize": authorize_params, "login_hint": login_hint, "next": next_url,
               "user_id": None, "verifications": []},
    )
    if request.session.session_key is None:
        request.session.save()
    owned = [uid for uid in request.session.get(SESSION_KEY, []) if uid != interaction.uid]
    request.session[SESSION_KEY] = (owned + [interaction.uid])[-app_settings.INTERACTIONS_PER_SESSION:]
    return interaction


def printable(value: str) -> str:
    """Without control characters (a NUL cannot even be stored in PostgreSQL text)."""
    return "".join(ch for ch in value if ch.isprintable())


def begin_authorization(request: HttpRequest, authorize_params: str, application: Any, login_hint: str) -> str:
    """The provider's sign-in handler: start an interaction, answer the sign-in page's URL."""
    interaction = start(request, authorize_params=authorize_params, client_id=application.client_id,
                        login_hint=login_hint)
    return reverse("experience:sign-in", args=[interaction.uid])


def load(request: HttpRequest, uid: str) -> Interaction:
    """This browser's live interaction ``uid``, or InteractionError."""
    if uid not in request.session.get(SESSION_KEY, []):
        raise InteractionError("not_found")
    interaction = Interaction.objects.filter(uid=uid).first()
    if interaction is None:
        raise InteractionError("not_found")
    if interaction.completed_at is not None:
        raise InteractionError("completed")
    if interaction.is_expired:
        raise InteractionError("expired")
    return interaction


def restart_url(interaction: Interaction | None) -> str:
    """Where a user whose interaction expired can start over."""
    if interaction is not None and interaction.state.get("authorize"):
        return f"{reverse('identity:authorize')}?{interaction.state['authorize']}"
    return reverse("experience:sign-in-start")


# -- steps ------------------------------------------------------------------------------------------
def verify(request: HttpRequest, interaction: Interaction, authenticator: Authenticator, data: dict[str, Any],
           *, save: bool = True) -> Any:
    """Run one authenticator's check; on success the user is identified and the verification kept
    (``save=False`` leaves writing the state to the caller, e.g. :func:`sign_in`'s submit)."""
    identifier = str(data.get("identifier") or data.get("email") or data.get("phone_number") or "")
    auth = authenticator.get_auth(request)
    try:
        user = auth.sign_in(data)
    except AuthError as error:
        audit.record(request, AuditEvent.SIGN_IN_FAILED, identifier=identifier, authenticator=authenticator.name,
                     client_id=interaction.client_id, reason=getattr(error, "reason", error.code))
        raise
    state = interaction.state
    if state.get("user_id") not in (None, str(user.pk)):
        state["verifications"] = []  # a different account: earlier verifications do not carry over
    state["user_id"] = str(user.pk)
    state["verifications"].append({"method": authenticator.auth_type, "authenticator": authenticator.name,
                                   "amr": auth.amr(), "at": int(time.time())})
    if save:
        interaction.save(update_fields=["state"])
    interaction.identified_user = user
    return user


def sign_in(request: HttpRequest, interaction: Interaction, authenticator: Authenticator,
            data: dict[str, Any]) -> Completed:
    """One step that verifies and submits: what a sign-in form does. Raises like both."""
    verify(request, interaction, authenticator, data, save=False)
    return submit(request, interaction)


def submit(request: HttpRequest, interaction: Interaction) -> Completed:
    """Check every gate in order; sign the user in when all pass. Raises RequirementMissing."""
    state = interaction.state
    user = _identified_user(interaction)
    if user is None:
        raise RequirementMissing("identify")
    # Later gates (captcha, second factor, profile, MFA enrolment) join here in their fixed order.
    finished = Interaction.objects.filter(uid=interaction.uid, completed_at__isnull=True).update(
        completed_at=timezone.now(), state=state
    )
    if not finished:
        raise InteractionError("completed")
    amr = sorted({method for verification in state["verifications"] for method in verification["amr"]})
    authentication.sign_in(request, user, amr, identity_settings.ACR_PASSWORD)
    audit.record(request, AuditEvent.SIGN_IN_SUCCEEDED, user=user, identifier=user.get_username(),
                 authenticator=state["verifications"][-1]["authenticator"], client_id=interaction.client_id)
    return Completed(_next_url(request, interaction))


def _identified_user(interaction: Interaction) -> Any | None:
    state = interaction.state
    if not state.get("user_id") or not state.get("verifications"):
        return None
    user = getattr(interaction, "identified_user", None)  # verified during this request
    if user is not None and str(user.pk) == state["user_id"]:
        return user if user.is_active else None
    return get_user_model()._default_manager.filter(pk=state["user_id"], is_active=True).first()


def _next_url(request: HttpRequest, interaction: Interaction) -> str:
    from identity.views import mark_resume, resume_url

    params = interaction.state.get("authorize")
    if params:
        return resume_url(params, mark_resume(request, params, login=True))
    return safe_next(request, interaction.state.get("next", ""))


def safe_next(request: HttpRequest, next_url: str) -> str:
    """``next`` only when it stays on this site; the default page otherwise (no open redirect)."""
    if next_url and url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()},
                                                    require_https=request.is_secure()):
        return next_url
    return str(reverse(settings.LOGIN_REDIRECT_URL) if ":" in str(settings.LOGIN_REDIRECT_URL) else settings.LOGIN_REDIRECT_URL)


