"""The signed-in state of a browser session, as the OpenID provider sees it.

The interaction engine calls :func:`sign_in` when every requirement is met; the authorization
endpoint reads :func:`current` to learn when and how the user authenticated (``auth_time``, ``amr``,
``acr``) and in which browser session (``sid``).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth import login, logout
from django.http import HttpRequest
from django.urls import reverse

from identity import backends

SESSION_KEY = "portcullis_auth"
RESUME_PARAM = "resume"
RESUME_SESSION_KEY = "portcullis_resume"


@dataclass(frozen=True)
class Authentication:
    user_id: str
    auth_time: int
    amr: list[str]
    acr: str
    sid: str


def sign_in(request: HttpRequest, user: Any, amr: list[str], acr: str) -> Authentication:
    """Log the user in (the session key rotates) and remember how they authenticated."""
    login(request, user, backend=backends.sign_in_backend())
    state = Authentication(str(user.pk), int(time.time()), list(amr), acr, secrets.token_urlsafe(16))
    request.session[SESSION_KEY] = {
        "uid": state.user_id,
        "time": state.auth_time,
        "amr": state.amr,
        "acr": state.acr,
        "sid": state.sid,
    }
    return state


def save_session(request: HttpRequest) -> None:
    """Write the browser session now, in the caller's transaction, when its store can
    (``identity.session_store``): the sign-in then commits once. With another store, or outside a
    transaction, nothing happens here and the response saves the session as usual."""
    save = getattr(getattr(request, "session", None), "save_in_transaction", None)
    if save is not None:
        save()


def current(request: HttpRequest) -> Authentication | None:
    """How the session's user signed in, or None when nobody did through Portcullis."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    data = request.session.get(SESSION_KEY)
    if not isinstance(data, dict) or data.get("uid") != str(user.pk):
        # Logged in some other way (Django admin's login form, say): that session never passed
        # the sign-in experience's requirements, so the provider does not count it.
        return None
    return Authentication(data["uid"], int(data["time"]), list(data["amr"]), str(data["acr"]), str(data["sid"]))


def sign_out(request: HttpRequest) -> None:
    logout(request)


def mark_resume(request: HttpRequest, authorize_params: str, **facts: bool) -> str:
    """Remember in the session that the user has just done something (``login``, ``consent``) for
    this very authorization request; the endpoint trusts it once, from this session, for these
    parameters only."""
    token = secrets.token_urlsafe(16)
    markers = dict(request.session.get(RESUME_SESSION_KEY) or {})
    markers = dict(list(markers.items())[-4:])
    markers[token] = {"at": int(time.time()), "params": authorize_params, **facts}
    request.session[RESUME_SESSION_KEY] = markers
    return token


def resume_url(authorize_params: str, token: str) -> str:
    """The authorization request again, carrying the marker :func:`mark_resume` made."""
    return f"{reverse('identity:authorize')}?{authorize_params}&{urlencode({RESUME_PARAM: token})}"
