"""Django's ``cached_db`` sessions with fewer round trips, and with PostgreSQL going away while a
session is saved treated as an outage (503), not as "the session was deleted" (400).

What it changes, and why each is safe:

- **An outage is an outage.** Django's database store turns *any* database error of an update into
  ``UpdateError``, which ``SessionMiddleware`` answers with ``SessionInterrupted`` (a 400 page). A row
  really gone and a server gone look alike there. This store lets the server's error through
  instead, so that ``identity.middleware.UnavailableMiddleware`` answers 503 with ``Retry-After``, as
  for every other outage.
- **A new key is not looked up first.** Django asks the cache and the database whether a new random
  key is taken before using it. A key is 32 characters of 36 (165 bits): a collision never happens,
  and if it did the ``INSERT`` would fail on the primary key and :meth:`save` would pick another key.
- **A cycled key is written once.** Django's ``cycle_key`` inserts the row under the new key at once
  (with the old data) and the response updates it (with the new data): two writes and two cache
  sets. Here the new key is only reserved; the response's save inserts the row. The old row is
  deleted at once, as in Django.
- **Deleting is one statement** (Django reads the row first to delete it through the ORM's collector).

The standalone server uses it (``SESSION_ENGINE=identity.session_store``); a project may too.
"""

from __future__ import annotations

from typing import Any

from django.contrib.sessions.backends.base import VALID_KEY_CHARS, CreateError, UpdateError
from django.contrib.sessions.backends.cached_db import SessionStore as CachedDbSessionStore
from django.core.cache.backends.base import BaseCache
from django.db import InterfaceError, OperationalError
from django.utils.crypto import get_random_string


class SessionStore(CachedDbSessionStore):
    _unsaved_key: str | None = None  # a key cycle_key reserved that has no row yet
    _cache: BaseCache  # Django's, set in __init__ (the stubs do not declare these two)
    _session: dict[str, Any]  # Django's property: the data, loaded on first use

    def _get_new_session_key(self) -> str:
        return get_random_string(32, VALID_KEY_CHARS)

    def cycle_key(self) -> None:
        data = self._session
        key = self.session_key
        self._session_key = self._unsaved_key = self._get_new_session_key()
        self._session_cache = data
        self.modified = True
        if key:
            self.delete(key)

    def save(self, must_create: bool = False) -> None:
        if self._unsaved_key is not None and self._unsaved_key == self.session_key:
            for _ in range(3):
                try:
                    super().save(must_create=True)
                except CreateError:  # the key was taken after all: another one
                    self._session_key = self._unsaved_key = self._get_new_session_key()
                    continue
                self._unsaved_key = None
                return
            raise CreateError
        try:
            super().save(must_create)
        except UpdateError as error:
            cause = error.__context__
            if isinstance(cause, (OperationalError, InterfaceError)):  # the server, not the row
                raise cause from None
            raise

    def delete(self, session_key: Any = None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        self.model.objects.filter(session_key=session_key).delete()
        self._cache.delete(self.cache_key_prefix + session_key)
