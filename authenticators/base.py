"""The contract of an authenticator type.

``Auth`` is what the engine calls; ``BaseAuth`` implements all of it except ``validate``, which a
type writes: take the submitted data, return the user, or raise ``AuthError``. See
docs/extending.md for a worked example.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from django.http import HttpRequest

    from authenticators.models import Authenticator


class AuthError(Exception):
    """A failed authentication, with a stable code and a message safe to show the user.

    ``reason`` (default: the code) is for the audit log only, never shown: e.g. the code
    ``invalid_credentials`` with the reason ``ambiguous_identifier``."""

    messages = {
        "invalid_credentials": _("The sign-in details are incorrect."),
        "invalid_input": _("Please fill in every field."),
        "disabled": _("This sign-in method is not available."),
    }

    def __init__(self, code: str, message: Any = None, *, reason: str = "") -> None:
        self.code = code
        self.message = message or self.messages.get(code, code)
        self.reason = reason or code
        super().__init__(code)


class Auth(ABC):
    """What every type offers (NocoBase's ``Auth``)."""

    def __init__(self, authenticator: Authenticator, request: HttpRequest | None = None) -> None:
        self.authenticator = authenticator
        self.request = request
        self._user: Any = None

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.authenticator.options or {})

    @property
    def user(self) -> Any:
        """The user this instance authenticated, once ``sign_in`` or ``check`` succeeded."""
        return self._user

    @user.setter
    def user(self, value: Any) -> None:
        self._user = value

    @abstractmethod
    def check(self) -> Any | None:
        """The user the current request is signed in as, or None."""

    @abstractmethod
    def validate(self, data: dict[str, Any]) -> Any:
        """Check the submitted credentials; return the user or raise ``AuthError``."""

    @abstractmethod
    def sign_in(self, data: dict[str, Any]) -> Any:
        """Validate and remember the user on this instance; return the user."""

    @abstractmethod
    def sign_out(self) -> None:
        """Forget the user."""

    def amr(self) -> list[str]:
        """Authentication method references (RFC 8176) this type proves."""
        return []


class BaseAuth(Auth):
    """The common implementation: a type usually writes only ``validate`` (and ``amr``)."""

    def check(self) -> Any | None:
        request = self.request
        user = getattr(request, "user", None) if request is not None else None
        if user is not None and user.is_authenticated:
            self.user = user
            return user
        return None

    def sign_in(self, data: dict[str, Any]) -> Any:
        if not self.authenticator.enabled:
            raise AuthError("disabled")
        user = self.validate(data)
        if user is None or not getattr(user, "is_active", False):
            raise AuthError("invalid_credentials")
        self.user = user
        return user

    def sign_out(self) -> None:
        self.user = None
