"""The hosted pages' side of the risk rules: the captcha inside a sign-in form, and the lockout
page (429 with ``Retry-After``). The rules themselves are in ``experience.risk``."""

from __future__ import annotations

import math
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from experience import branding, captcha, risk
from experience.errors import EngineError
from experience.models import Interaction
from identity.security import deny_framing

ID_FIELD, ANSWER_FIELD = "captcha_id", "captcha_answer"


def with_answer(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    """The step's data with the form's captcha answer as ``data["captcha"]`` (when one was shown)."""
    key = request.POST.get(ID_FIELD, "")
    if not key:
        return dict(data)
    return {**data, "captcha": {"id": key, "answer": request.POST.get(ANSWER_FIELD, "")}}


def context(request: HttpRequest, interaction: Interaction, error: EngineError | None = None) -> dict[str, Any]:
    """``captcha`` (a fresh challenge to show, or None) and ``captcha_error`` for the template.
    Every page shows a new challenge: a key is good for one answer."""
    if error is not None and error.kind == "captcha_answer" and isinstance(error.data.get("captcha"), dict):
        return {"captcha": error.data["captcha"], "captcha_error": str(error.message)}
    if risk.should_show_captcha(request, interaction):
        return {"captcha": captcha.new_challenge(), "captcha_error": ""}
    return {"captcha": None, "captcha_error": ""}


def is_locked_out(request: HttpRequest, error: EngineError, identifier: str) -> bool:
    """Whether a refusal is the account's lockout (not, e.g., a code's re-send cool-down, which
    shares its code): the lockout page answers it."""
    if error.kind != "rate_limited":
        return False
    try:
        risk.check_lockout(request, identifier)
    except EngineError:
        return True
    return False


def locked(request: HttpRequest, error: EngineError, interaction: Interaction | None = None) -> HttpResponse:
    """429 with ``Retry-After``: the same page whether or not the account exists."""
    retry_after = max(1, int(error.data.get("retry_after") or 1))
    context = {**branding.for_client(request, interaction.client_id if interaction is not None else ""),
               "minutes": math.ceil(retry_after / 60)}
    response = render(request, "experience/locked.html", context, status=429)
    response["Retry-After"] = str(retry_after)
    return deny_framing(response)
