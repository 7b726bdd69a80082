"""Django's ``cached_db`` sessions, except that PostgreSQL going away while a session is saved is an
outage (503), not "the session was deleted" (400).

Django's database store turns *any* database error of an update into ``UpdateError``, which
``SessionMiddleware`` answers with ``SessionInterrupted`` (a 400 page). A row really gone and a server
gone look alike there. This store lets the server's error through instead, so that
``identity.middleware.UnavailableMiddleware`` answers 503 with ``Retry-After``, as for every other
outage. The standalone server uses it (``SESSION_ENGINE=identity.session_store``); a project may too.
"""

from __future__ import annotations

from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.backends.cached_db import SessionStore as CachedDbSessionStore
from django.db import InterfaceError, OperationalError


class SessionStore(CachedDbSessionStore):
    def save(self, must_create: bool = False) -> None:
        try:
            super().save(must_create)
        except UpdateError as error:
            cause = error.__context__
            if isinstance(cause, (OperationalError, InterfaceError)):  # the server, not the row
                raise cause from None
            raise
