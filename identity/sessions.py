"""Which browser sessions belong to which user, so that an administrator can see them and end them.

Django keeps no such record: a session is a key and an opaque blob. A :class:`UserSession` row is
written when a user signs in (``user_logged_in``) and removed when they sign out
(``user_logged_out``). The key of a signed-in session also changes later: the engine cycles it after
each factor (SECURITY.md), so a signed-in user who signs in again, or steps up, gets a new key before
any new login. :class:`SessionTrackingMiddleware` follows those changes: on a response whose session
was modified (a cycled key always is), it compares the key with the one the row knows (its SHA-256
is kept in the session's own data) and updates the row. Requests that do not change the session cost
nothing.

:func:`end_sessions` deletes each session from the configured ``SESSION_ENGINE`` store
(``SessionStore(key).delete()``: both the cache and the database for ``cached_db``), so the browser
is signed out for real, whatever it holds. :func:`sign_out_everywhere` adds the tokens: every refresh
and access token of the user is revoked and pending authorization codes are deleted.

Sessions opened before this record existed are not listed until they next change; they still end
with the password (Django's session hash) or when they expire.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import timedelta
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import SESSION_KEY as AUTH_USER_KEY
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.db import transaction
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from oauth2_provider.models import get_grant_model

from identity import later
from identity.models import UserSession
from identity.tokens import revoke_user_tokens

PATH = "identity.sessions.SessionTrackingMiddleware"
AUTH_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"
# In the session's data: {"at": the key its row has, "seen": time}. The row is found by that key
# when the session's key changes (an earlier release's mark held {"row": pk, "key": the key's
# SHA-256, "seen"}, and still works). Only a key of this session's own is ever in it: its current
# one, or the one it had until this request cycled it away (dead from then on).
TRACK_KEY = "portcullis_session"
SEEN_EVERY = 300  # seconds between updates of last_seen_at


def _digest(session_key: str) -> str:
    return hashlib.sha256(session_key.encode()).hexdigest()


def _client(request: HttpRequest) -> dict[str, Any]:
    return {"ip": request.META.get("REMOTE_ADDR") or None,
            "user_agent": str(request.META.get("HTTP_USER_AGENT", ""))[:300]}


def _store(session_key: str | None = None) -> Any:
    return import_module(settings.SESSION_ENGINE).SessionStore(session_key)


def _remember(request: HttpRequest, user_id: Any) -> None:
    """Write (or move) the row of the request's session, a signed-in ``user_id``'s."""
    session = request.session
    if session.session_key is None:
        session.save()  # login() after a flush leaves the new session unsaved, so keyless
    key = str(session.session_key)
    mark = session.get(TRACK_KEY)
    now = timezone.now()
    rows = UserSession.objects.filter(user_id=user_id)
    moved = False
    if isinstance(mark, dict) and mark.get("at"):
        moved = bool(rows.filter(session_key=mark["at"]).update(session_key=key, last_seen_at=now))
    elif isinstance(mark, dict) and mark.get("row") is not None:  # an earlier release's mark
        moved = bool(rows.filter(pk=mark["row"]).update(session_key=key, last_seen_at=now))
    if not moved:
        # One statement (INSERT ... ON CONFLICT): a key some row already has (a session that was
        # another user's, say) becomes this sign-in's row. Nothing reads it back: a sign-in sends
        # it with its other writes (identity.later).
        row = UserSession(user_id=user_id, session_key=key, created_at=now, last_seen_at=now, **_client(request))
        later.upsert(row, unique_fields=("session_key",),
                     update_fields=("user", "created_at", "last_seen_at", "ip", "user_agent"))
    session[TRACK_KEY] = {"at": key, "seen": int(time.time())}


def _tracks(mark: Any, key: str) -> bool:
    """Whether the session's mark says its row has ``key``."""
    if not isinstance(mark, dict):
        return False
    if "at" in mark:
        return bool(mark["at"] == key)
    return bool(mark.get("key") == _digest(key))  # an earlier release's mark


@receiver(user_logged_in, dispatch_uid="portcullis_track_session")
def signed_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is not None and getattr(request, "session", None) is not None:
        _remember(request, user.pk)


@receiver(user_logged_out, dispatch_uid="portcullis_forget_session")
def signed_out(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    session = getattr(request, "session", None)
    if session is not None and session.session_key:
        UserSession.objects.filter(session_key=session.session_key).delete()


class SessionTrackingMiddleware:
    """Keeps each signed-in session's row on its current key (see the module's docstring).

    ``IdentityConfig.ready()`` adds it to ``MIDDLEWARE`` after ``AuthenticationMiddleware`` when a
    project does not list it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        session = getattr(request, "session", None)
        if session is None or not session.modified or session.is_empty():
            return response
        user_id = session.get(AUTH_USER_KEY)
        if user_id is None:
            return response
        mark = session.get(TRACK_KEY)
        key = session.session_key
        if key is None or not _tracks(mark, key) or time.time() - float(mark.get("seen", 0)) > SEEN_EVERY:
            _remember(request, user_id)
        return response


def install(settings: Any) -> None:
    """Put the middleware right after AuthenticationMiddleware when the project has not listed it."""
    middleware = list(settings.MIDDLEWARE)
    if PATH in middleware:
        return
    from identity.middleware import listed_at  # at ready(), after every app is loaded

    auth = listed_at(middleware, AUTH_MIDDLEWARE)  # Django's or a subclass of it
    at = len(middleware) if auth is None else auth + 1
    middleware.insert(at, PATH)
    settings.MIDDLEWARE = middleware


def is_open(row: UserSession) -> bool:
    """Whether the session still exists in the store (it may have expired or been flushed)."""
    return bool(_store().exists(row.session_key))


def end_session(row: UserSession) -> None:
    """Sign that browser out: the session leaves the store (cache and database alike), then its row."""
    _store(row.session_key).delete()
    UserSession.objects.filter(pk=row.pk).delete()


def end_sessions(user: Any) -> int:
    """End every recorded session of ``user``; how many there were."""
    rows = list(UserSession.objects.filter(user=user))
    for row in rows:
        end_session(row)
    return len(rows)


def sign_out_everywhere(user: Any) -> dict[str, int]:
    """End the user's sessions, revoke all their refresh and access tokens, and delete their pending
    authorization codes (a code redeemed after this would start a new family). Counts of each."""
    Grant = get_grant_model()
    sessions = end_sessions(user)
    with transaction.atomic():
        grants, _ = Grant.objects.filter(user=user).delete()
        refresh_tokens = revoke_user_tokens(user)
    return {"sessions": sessions, "refresh_tokens": refresh_tokens, "codes": grants}


def forget_ended(limit: int = 10_000) -> int:
    """Delete rows whose session is gone from the store (expired, flushed): housekeeping."""
    cutoff = timezone.now() - timedelta(seconds=SEEN_EVERY)
    ended = [row.pk for row in UserSession.objects.filter(last_seen_at__lt=cutoff).order_by("pk")[:limit]
             if not is_open(row)]
    deleted, _ = UserSession.objects.filter(pk__in=ended).delete()
    return deleted
