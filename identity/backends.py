"""The signed-in user of a request, loaded by a statement built once.

Django loads the session's user (``request.user``) through the authentication backend that signed
them in: ``ModelBackend.get_user`` builds and compiles ``User.objects.get(pk=...)`` on every request
that looks at the user (every authorization request, every hosted page). Portcullis signs users in
with :class:`SessionUserBackend` when ``AUTHENTICATION_BACKENDS`` lists it (the standalone settings
do, before Django's ``ModelBackend``), so their sessions load the user with a compiled statement
(``identity.prepared``): the same row, the same rule (an inactive user is nobody).

It checks no credentials and grants no permissions: ``authenticate()`` and ``has_perm()`` go on to
Django's ``ModelBackend`` listed after it, so a password is hashed once and permissions are
Django's. Sessions signed in by Django's backend (the admin's own login form, sessions from before)
keep loading through Django's backend.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import BaseBackend, ModelBackend

from identity.prepared import PreparedLookup

PATH = "identity.backends.SessionUserBackend"
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
# Stands in for the key while the statement compiles (an integer key): in the range of every integer
# field, even a SmallAutoField's (Django compiles a value out of range to an empty result).
_PLACEHOLDER_PK = -32_001

_users = PreparedLookup(lambda pk: get_user_model()._default_manager.filter(pk=pk), _PLACEHOLDER_PK)
_model_backend = ModelBackend()


class SessionUserBackend(BaseBackend):
    """Loads a session's user as ``ModelBackend.get_user`` does (see the module's docstring)."""

    def get_user(self, user_id: Any) -> Any | None:
        if type(user_id) is not int:  # a key of another type (a UUID, a string): Django's own look-up
            return _model_backend.get_user(user_id)
        user = _users.get(user_id)
        return user if user is not None and _model_backend.user_can_authenticate(user) else None


def sign_in_backend() -> str:
    """The backend path a Portcullis sign-in records in the session: this module's backend when the
    project lists it, else Django's ``ModelBackend``."""
    return PATH if PATH in settings.AUTHENTICATION_BACKENDS else MODEL_BACKEND
