"""Recording audit events."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.http import HttpRequest

from experience.models import AuditEvent
from identity import metrics
from identity.network import client_ip
from identity.prepared import insert, insert_together

__all__ = ["client_ip", "record", "together"]  # client_ip: the one rule (identity.network), for risk and known devices

# The audit kinds that are sign-in outcomes, as the metric portcullis_sign_ins_total labels them.
SIGN_IN_OUTCOMES = {AuditEvent.SIGN_IN_SUCCEEDED: "succeeded", AuditEvent.SIGN_IN_FAILED: "failed",
                    AuditEvent.CODE_FAILED: "code_failed", AuditEvent.MFA_FAILED: "second_factor_failed"}


# The events of the innermost together() block, written when it ends; None outside one.
_pending: ContextVar[list[AuditEvent] | None] = ContextVar("portcullis_audit_pending", default=None)


@contextmanager
def together() -> Iterator[None]:
    """Write the events recorded inside the block when it ends, in one statement (PostgreSQL; an
    ``INSERT`` each elsewhere): a sign-in's events (a new device, the sign-in itself). Use it
    inside the transaction those events belong to: an exception drops them, as the transaction's
    rollback would."""
    pending: list[AuditEvent] = []
    token = _pending.set(pending)
    try:
        yield
    finally:
        _pending.reset(token)
    if len(pending) == 1:
        insert(pending[0])
    elif pending:
        insert_together(pending)


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
    pending = _pending.get()
    if pending is None:
        insert(event)
    else:
        pending.append(event)
    # Every sign-in outcome and lockout is audited here, so it is counted here (identity.metrics).
    if kind in SIGN_IN_OUTCOMES:
        metrics.sign_in(SIGN_IN_OUTCOMES[kind], authenticator)
    elif kind == AuditEvent.LOCKED_OUT:
        metrics.lockout()
