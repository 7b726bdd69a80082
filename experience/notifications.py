"""E-mails that tell a user about their account: a sign-in from a browser the account had not used
(:func:`new_sign_in`) and a changed password (:func:`password_changed`).

How a browser is recognised: on a sign-in, the browser gets a long-lived cookie
(``portcullis_device``, signed, two years, HttpOnly) holding a random 128-bit device id, and the
account keeps the SHA-256 of that id (:class:`experience.models.KnownDevice`). A sign-in whose
browser brings no valid cookie, or one the account does not know, is from a new device: it is
recorded, audited (``sign_in.new_device``) and e-mailed to the account's address. The very first
device an account signs in from is recorded and audited without an e-mail (right after sign-up,
say).
Clearing cookies or a private window therefore counts as a new device, which errs on the side of
telling. ``experience.middleware.DeviceCookieMiddleware`` sets the cookie on the response.

Messages are sent after the transaction commits, in the language of the request; a failed
delivery is logged (without the message) and never fails the sign-in.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from typing import Any

from django.db import IntegrityError, connections, router, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone, translation

from experience import audit
from experience.models import AuditEvent, KnownDevice
from identity import delivery, later
from identity.app_settings import setting
from identity.prepared import PreparedQuery, insert

logger = logging.getLogger("portcullis.notifications")

COOKIE = "portcullis_device"
COOKIE_SALT = "portcullis.device"
COOKIE_AGE = 2 * 365 * 24 * 3600
REQUEST_ATTRIBUTE = "_portcullis_device_cookie"


# -- the device cookie ----------------------------------------------------------------------------------
def device_id(request: HttpRequest) -> str | None:
    """The id in this browser's valid device cookie, or None."""
    value = request.get_signed_cookie(COOKIE, default=None, salt=COOKIE_SALT, max_age=COOKIE_AGE)
    return str(value) if value else None


def device_key(identifier: str) -> str:
    return hashlib.sha256(identifier.encode()).hexdigest()


def set_device_cookie(request: HttpRequest, response: HttpResponse) -> None:
    """What the middleware calls: give the browser the cookie a sign-in asked for."""
    identifier = getattr(request, REQUEST_ATTRIBUTE, None)
    if identifier:
        from django.conf import settings

        response.set_signed_cookie(COOKIE, identifier, salt=COOKIE_SALT, max_age=COOKIE_AGE, httponly=True,
                                   samesite="Lax", secure=settings.SESSION_COOKIE_SECURE)


# -- the notifications ---------------------------------------------------------------------------------
def new_sign_in(request: HttpRequest, user: Any, client_id: str = "") -> None:
    """Record this browser as one of ``user``'s devices when it is a new one, audit it
    (``sign_in.new_device``, the account's first device too), and e-mail the user unless it is the
    account's first. Called where a browser sign-in completes
    (``experience.completion.BrowserSession``). A browser with no cookie is a new device for sure:
    its row and its event are written with the sign-in's other writes (``identity.later``), and
    whether the account had a device before is known, and told, once they are sent."""
    if not setting("NEW_SIGN_IN_EMAILS", True):
        return
    identifier = device_id(request)
    fresh = identifier is None
    if identifier is None:
        identifier = secrets.token_urlsafe(16)
    setattr(request, REQUEST_ATTRIBUTE, identifier)  # (re)sent, so the cookie lives two years from now
    now = timezone.now()
    key = device_key(identifier)
    if not fresh and KnownDevice.objects.filter(user=user, key=key).update(last_seen_at=now):
        return
    device = KnownDevice(user=user, key=key, user_agent=user_agent(request), ip=audit.client_ip(request),
                         created_at=now, last_seen_at=now)

    def recorded(answered: tuple[Any, ...] | None) -> None:
        if answered[0] if answered is not None else has_other_devices(user, device.pk):
            notify(request, user, "new_sign_in", client_id)  # (the account's first device: nothing to tell)

    also = _had_devices(user)  # asked in the INSERT itself on PostgreSQL
    if fresh:  # an id made just now (128 random bits): no other sign-in has it
        later.insert(device, also=also, then=recorded)
    else:
        try:
            with transaction.atomic():
                answered = insert(device, also=also)
        except IntegrityError:
            return  # a parallel sign-in from this browser recorded it first
        recorded(answered)
    audit.record(request, AuditEvent.NEW_DEVICE, user=user, identifier=user.get_username(), client_id=client_id)


def _had_devices(user: Any) -> tuple[str, list[Any]]:
    """The ``also`` of a new device's ``INSERT``: whether the account had a device before it (a
    subquery in ``RETURNING`` does not see the row being written)."""
    connection = connections[router.db_for_write(KnownDevice)]
    quote = connection.ops.quote_name
    column = KnownDevice._meta.get_field("user").column
    return f"EXISTS (SELECT 1 FROM {quote(KnownDevice._meta.db_table)} WHERE {quote(column)} = %s)", [user.pk]


# Whether an account has a device besides one: compiled once (integer ids in the placeholders' places).
_other_device = PreparedQuery(
    lambda user_id, device_id: KnownDevice.objects.filter(user_id=user_id).exclude(pk=device_id).values_list("pk")[:1],
    (2_147_480_123, 2_147_480_124))


def has_other_devices(user: Any, device_pk: int) -> bool:
    """Whether ``user`` has a known device besides ``device_pk`` (one statement; compiled once for an
    integer user id)."""
    if isinstance(user.pk, int) and not isinstance(user.pk, bool):
        return _other_device.values(user.pk, device_pk, db=router.db_for_read(KnownDevice)) is not None
    return KnownDevice.objects.filter(user=user).exclude(pk=device_pk).exists()


def password_changed(request: HttpRequest, user: Any) -> None:
    """Tell ``user`` their password was changed (reset or changed), from where and when."""
    notify(request, user, "password_changed")


def suspicious_attempt(request: HttpRequest, user: Any) -> None:
    """Tell ``user`` that repeated failed sign-ins locked their account for a while (from where)."""
    if setting("SUSPICIOUS_ATTEMPT_EMAILS", True):
        notify(request, user, "suspicious_attempt")


def notify(request: HttpRequest, user: Any, template: str, client_id: str = "") -> None:
    """E-mail ``template`` to the user's address once the transaction commits; a failure is logged.
    With ``client_id``, the message names that application (its experience's display name) and
    its support address."""
    from authenticators.types.codes import brand_context
    from experience.policy import policy_for

    address = getattr(user, "email", "") or ""
    if not address:
        return
    context = {"name": user.get_full_name() or user.get_username(), "when": timezone.now(),
               "ip": audit.client_ip(request) or "", "browser": user_agent(request),
               **(brand_context(policy_for(client_id, request), request) if client_id else {})}
    language = translation.get_language()

    def send() -> None:
        try:
            delivery.send_email(request, address, template, context, language=language)
        except delivery.DeliveryError:
            logger.warning("notification %s for user %s was not delivered", template, user.pk)

    transaction.on_commit(send)


def user_agent(request: HttpRequest) -> str:
    return str(request.META.get("HTTP_USER_AGENT", ""))[:300]
