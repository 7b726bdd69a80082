"""The hosted sign-in page's one-time code tabs (``email-code``, ``sms-code``, any type registered
with a ``send_form``): first the address, then the code, with "Resend code" and "Use another method".

The code that was sent is kept in the interaction's state (``state["code"]``: which authenticator,
the handle ``code_id``, the address and when), so the page can show the code form again, and resend,
without the address travelling in URLs. The code itself is never kept: only its HMAC, by the
authenticator (``authenticators.base.CodeAuth``), bound to this interaction.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.http import HttpRequest
from django.utils.translation import gettext as _

from authenticators.base import SentCode
from authenticators.models import Authenticator
from experience.errors import EngineError
from experience.models import Interaction

STATE_KEY = "code"


def is_code_tab(authenticator: Authenticator | None) -> bool:
    auth_type = authenticator.type if authenticator is not None else None
    return auth_type is not None and auth_type.send_form is not None


def pending(interaction: Interaction, authenticator: Authenticator) -> dict[str, Any] | None:
    """The code this interaction last sent through ``authenticator``, if any."""
    value = interaction.state.get(STATE_KEY)
    if isinstance(value, dict) and value.get("authenticator") == authenticator.name and value.get("code_id"):
        return value
    return None


def remember(interaction: Interaction, authenticator: Authenticator, data: dict[str, Any], sent: SentCode) -> None:
    field, address = next(iter(data.items()))
    interaction.state[STATE_KEY] = {"authenticator": authenticator.name, "code_id": sent.code_id, "field": field,
                                    "to": address, "at": int(time.time()), "resend_after": sent.resend_after}
    interaction.save(update_fields=["state"])


def code_step(request: HttpRequest, interaction: Interaction, current: Authenticator | None,
              form: forms.Form | None = None) -> str:
    """``"address"`` or ``"code"`` on a code tab (``""`` on other tabs): the form shown says which;
    without one, the code form once a code was sent, unless the user asked for the address again."""
    if current is None or not is_code_tab(current):
        return ""
    send_form = current.type.send_form if current.type is not None else None
    if form is not None:
        return "address" if send_form is not None and isinstance(form, send_form) else "code"
    if pending(interaction, current) is not None and request.GET.get("step") != "address":
        return "code"
    return "address"


def address_form(authenticator: Authenticator, **kwargs: Any) -> forms.Form:
    auth_type = authenticator.type
    assert auth_type is not None and auth_type.send_form is not None
    return auth_type.send_form(**kwargs)


def address_initial(interaction: Interaction, authenticator: Authenticator) -> dict[str, str]:
    """The address sent to before (the user wants to change it), or the request's ``login_hint``."""
    sent = pending(interaction, authenticator)
    if sent is not None:
        return {sent["field"]: sent["to"]}
    hint = str(interaction.state.get("login_hint") or "")
    return {"email": hint if "@" in hint else "", "phone_number": hint if hint.startswith("+") else ""}


def code_form(authenticator: Authenticator, sent: dict[str, Any] | None) -> forms.Form:
    auth_type = authenticator.type
    assert auth_type is not None and auth_type.sign_in_form is not None
    return auth_type.sign_in_form(initial={"code_id": sent["code_id"] if sent else ""})


def tab_url(request: HttpRequest, authenticator: Authenticator, step: str = "") -> str:
    query = {"authenticator": authenticator.name, **({"step": step} if step else {})}
    return f"{request.path}?{urlencode(query)}"


def context(request: HttpRequest, interaction: Interaction, current: Authenticator,
            tabs: list[Authenticator]) -> dict[str, Any]:
    """What the code step shows: where the code went, when a new one may be asked for, the links."""
    sent = pending(interaction, current)
    resend_in = max(0, int(sent["at"]) + int(sent["resend_after"]) - int(time.time())) if sent else 0
    send_form = current.type.send_form if current.type is not None else None
    return {"pending": sent, "resend_in": resend_in, "address_url": tab_url(request, current, step="address"),
            "by_phone": send_form is not None and "phone_number" in send_form.base_fields,
            "other_method": next((tab for tab in tabs if tab != current), None)}


def send_error_message(error: EngineError) -> str:
    """A refused send as the page says it: how long to wait during the cool-down."""
    retry_after = int(error.data.get("retry_after") or 0)
    if error.code == "too_many_requests" and 0 < retry_after < 3600:
        return _("Wait %(seconds)s s before asking for a new code.") % {"seconds": retry_after}
    if error.code == "too_many_requests" and retry_after:
        return _("Too many codes were sent here today. Try again tomorrow, or use another method.")
    return str(error.message)
