"""Recording audit events."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from experience.models import AuditEvent
from identity import later, metrics
from identity.network import client_ip

__all__ = ["client_ip", "record"]  # client_ip: the one rule (identity.network), for risk and known devices

# The audit kinds that are sign-in outcomes, as the metric portcullis_sign_ins_total labels them.
SIGN_IN_OUTCOMES = {AuditEvent.SIGN_IN_SUCCEEDED: "succeeded", AuditEvent.SIGN_IN_FAILED: "failed",
                    AuditEvent.CODE_FAILED: "code_failed", AuditEvent.MFA_FAILED: "second_factor_failed"}


def record(request: HttpRequest, kind: str, *, user: Any = None, identifier: str = "", authenticator: str = "",
           client_id: str = "", reason: str = "") -> None:
    event = AuditEvent(
        kind=kind,
        user=user if user is not None and getattr(user, "pk", None) else None,
        identifier=identifier[:254],
        authenticator=authenticator,
        client_id=client_id,
        ip=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:300],
        reason=reason,
    )
    later.insert(event)  # with a sign-in's other writes when it sends them together (identity.later)
    # Every sign-in outcome and lockout is audited here, so it is counted here (identity.metrics).
    if kind in SIGN_IN_OUTCOMES:
        metrics.sign_in(SIGN_IN_OUTCOMES[kind], authenticator)
    elif kind == AuditEvent.LOCKED_OUT:
        metrics.lockout()
