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
  deleted in the same request's transaction, as in Django (at once, or with a sign-in's other
  writes when it sends them together: ``identity.later``; either way the old key is dead when the
  sign-in commits, and its cache entry is marked at once).
- **A key cycled away by a sign-in is remembered for a while** (:data:`CYCLED_FOR` seconds): its
  cache entry becomes a marker instead of being deleted (the same one command). A request that
  still carries the old key (a double-submitted sign-in form, a second tab's request in flight)
  then finds the marker and leaves the browser's cookie alone: Django's middleware would delete
  the cookie of what looks like an empty session, and if that answer arrives after the sign-in's
  own, the browser loses its new signed-in cookie. Such a request sees a signed-out session with
  no data; it cannot change the cookie either: a save answers ``UpdateError``, which Django's
  ``SessionMiddleware`` turns into ``SessionInterrupted`` (a 400, no cookie). The marker gives the
  old key no access to anything: the key is still signed out and empty.
- **Deleting is one statement** (Django reads the row first to delete it through the ORM's collector;
  ``identity.prepared.delete_by_pk``).
- **A sign-in writes its new row in its own transaction.** :meth:`SessionStore.save_in_transaction`
  (called by ``identity.authentication.save_session`` where a browser sign-in completes) inserts the
  cycled key's row beside the sign-in's other writes (in their one statement on PostgreSQL:
  ``identity.later``), so they commit once; the cache is set when
  that transaction commits, and the response's :meth:`save` then writes nothing unless the data
  changed since. The row is inserted without a savepoint: the key is new and random (see above),
  and if the sign-in's transaction rolls back, the response saves the session as before.

The standalone server uses it (``SESSION_ENGINE=identity.session_store``); a project may too.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import VALID_KEY_CHARS, CreateError, UpdateError
from django.contrib.sessions.backends.cached_db import SessionStore as CachedDbSessionStore
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.db import InterfaceError, OperationalError, router, transaction
from django.utils.crypto import get_random_string
from django.utils.functional import cached_property
from django.utils.module_loading import import_string

from identity import later
from identity.prepared import delete_by_pk

logger = logging.getLogger(__name__)
CYCLED = "portcullis:cycled"  # the cache value of a key a sign-in cycled away (see above)
CYCLED_FOR = 120  # seconds: longer than any request still in flight with the old key


class SessionStore(CachedDbSessionStore):
    _unsaved_key: str | None = None  # a key cycle_key reserved that has no row yet
    _session: dict[str, Any]  # Django's property: the data, loaded on first use (not in the stubs)
    _written: tuple[str, bytes, bool] | None = None  # what save_in_transaction wrote: key, data, committed
    cycled_away = False  # this request's key was cycled away by a sign-in (in a parallel request)

    def __init__(self, session_key: str | None = None) -> None:
        # Django's SessionBase.__init__'s attributes but two, which are looked up when the session is first
        # used (most requests do not use it), not on every request: Django's cached_db looks the
        # cache up here (a context-local read), and SessionBase imports the serializer by its name.
        self._session_key = session_key
        self.accessed = False
        self.modified = False

    @cached_property
    def _cache(self) -> BaseCache:
        return caches[settings.SESSION_CACHE_ALIAS]

    @cached_property
    def serializer(self) -> Any:  # SessionBase's attribute, set in its __init__
        return import_string(settings.SESSION_SERIALIZER)

    def _get_new_session_key(self) -> str:
        return get_random_string(32, VALID_KEY_CHARS)

    def cycle_key(self) -> None:
        data = self._session
        key = self.session_key
        self._session_key = self._unsaved_key = self._get_new_session_key()
        self._session_cache = data
        self.modified = True
        self.cycled_away = False  # a sign-in in this request: its new key is this browser's now
        if key:
            # The marker first, then the row: a request loading the old key meanwhile finds either
            # its old data (and cannot save it: the row is gone) or the marker.
            self._cache.set(self.cache_key_prefix + key, CYCLED, CYCLED_FOR)
            later.delete_by_pk(self.model, key)  # with the sign-in's other writes, when it sends them together

    def load(self) -> dict[str, Any]:
        return self._unless_cycled(super().load())

    async def aload(self) -> dict[str, Any]:
        return self._unless_cycled(await super().aload())

    def _unless_cycled(self, data: Any) -> dict[str, Any]:
        if data == CYCLED:  # a parallel sign-in cycled this key away: signed out, empty, read only
            self._session_key = None
            self.cycled_away = True
            return {}
        return data

    def is_empty(self) -> bool:
        # A cycled-away session is not "emptied": its cookie is the browser's signed-in one now.
        # Otherwise Django's rule, without raising (and catching) an AttributeError on every
        # request whose session was never loaded.
        return not self.cycled_away and not self._session_key and not self.__dict__.get("_session_cache")

    def exists(self, session_key: str | None) -> bool:
        if not session_key:
            return False
        data = self._cache.get(self.cache_key_prefix + session_key)
        if data is not None:
            return data != CYCLED
        return super(CachedDbSessionStore, self).exists(session_key)

    def save_in_transaction(self) -> bool:
        """Insert the row of a key :meth:`cycle_key` reserved now, in the caller's transaction
        (inside ``transaction.atomic``); answers whether it did. Once that transaction commits the
        cache holds the data too, and :meth:`save` skips a save that would write the same data; if
        it rolls back, :meth:`save` inserts the row again."""
        key = self.session_key
        if key is None or self._unsaved_key != key:
            return False
        data = self._session  # loaded: cycle_key kept it
        row = self.create_model_instance(data)
        using = router.db_for_write(self.model, instance=row)
        if not transaction.get_connection(using).in_atomic_block:
            return False
        later.insert(row, using=using)
        written = self.serializer().dumps(data)
        self._unsaved_key = None
        self._written = (key, written, False)

        def committed() -> None:
            if self._written is not None and self._written[0] == key:
                self._written = (key, written, True)
            try:
                self._cache.set(self.cache_key_prefix + key, self.serializer().loads(written), self.get_expiry_age())
            except Exception:
                logger.exception("Error saving to cache (%s)", self._cache)

        transaction.on_commit(committed, using=using)
        return True

    def save(self, must_create: bool = False) -> None:
        if self.cycled_away:  # a parallel sign-in owns this browser's cookie now
            raise UpdateError
        written = self._written
        if written is not None and written[0] == self.session_key and not must_create:
            key, data, committed = written
            if committed and data == self.serializer().dumps(self._session):
                return  # save_in_transaction wrote this very data, and it is committed
            if not committed and not transaction.get_connection(router.db_for_write(self.model)).in_atomic_block:
                self._unsaved_key = key  # that transaction rolled back, the row with it: insert it again
            self._written = None
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
        delete_by_pk(self.model, session_key)
        self._cache.delete(self.cache_key_prefix + session_key)
