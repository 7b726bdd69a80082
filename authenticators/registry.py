"""The registry of authenticator types.

A package registers its types from its ``AppConfig.ready()``::

    from authenticators.registry import registry
    registry.register("password", PasswordAuth, settings_form=PasswordSettingsForm,
                      sign_in_form=PasswordSignInForm, title=_("Password"))
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django import forms

if TYPE_CHECKING:
    from authenticators.base import Auth


@dataclass(frozen=True)
class AuthType:
    """One registered type and its parts."""

    name: str
    auth_class: type[Auth]
    settings_form: type[forms.Form] | None = None
    sign_in_form: type[forms.Form] | None = None
    sign_up_form: type[forms.Form] | None = None
    title: Any = ""
    secret_options: tuple[str, ...] = field(default_factory=tuple)
    send_form: type[forms.Form] | None = None  # a code type's first step: the address to send the code to

    @property
    def kind(self) -> str:
        """How the engine drives the type (``form``, ``code``, ``redirect``, ``second_factor``):
        decided by the class it derives from (see authenticators.base)."""
        return self.auth_class.kind

    @property
    def is_first_factor(self) -> bool:
        """Whether the type can identify a user on its own (every kind but ``second_factor``)."""
        return self.kind != "second_factor"

    def initial_options(self) -> dict[str, Any]:
        """What the settings form starts with (the admin's add page shows the same). A key missing
        from an authenticator's stored options means this value: types read their options so."""
        values: dict[str, Any] = {}
        for name, form_field in (self.settings_form.base_fields.items() if self.settings_form else ()):
            initial = form_field.initial() if callable(form_field.initial) else form_field.initial
            if initial is not None:
                values[name] = initial
        return values

    def effective_options(self, options: dict[str, Any] | None) -> dict[str, Any] | None:
        """Stored ``options`` as the type reads them: every option of the settings form, the missing ones
        at their initial values, cleaned by the form (so ``{}`` and the form's defaults compare equal).
        None when the type has no settings form or the stored options do not pass it."""
        if self.settings_form is None or not isinstance(options, dict):
            return None
        form = self.settings_form(data={**self.initial_options(), **options})
        return dict(form.cleaned_data) if form.is_valid() else None


class AlreadyRegistered(Exception):
    pass


class Registry:
    def __init__(self) -> None:
        self._types: dict[str, AuthType] = {}

    def register(
        self,
        name: str,
        auth_class: type[Auth],
        *,
        settings_form: type[forms.Form] | None = None,
        sign_in_form: type[forms.Form] | None = None,
        sign_up_form: type[forms.Form] | None = None,
        title: Any = "",
        secret_options: tuple[str, ...] = (),
        send_form: type[forms.Form] | None = None,
        replace: bool = False,
    ) -> AuthType:
        if name in self._types and not replace:
            raise AlreadyRegistered(f"Authenticator type {name!r} is already registered.")
        auth_type = AuthType(name, auth_class, settings_form, sign_in_form, sign_up_form, title or name, secret_options,
                             send_form)
        self._types[name] = auth_type
        return auth_type

    def unregister(self, name: str) -> None:
        self._types.pop(name, None)

    def get(self, name: str) -> AuthType | None:
        return self._types.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __iter__(self) -> Iterator[AuthType]:
        return iter(self._types.values())

    def choices(self) -> list[tuple[str, str]]:
        return [(t.name, str(t.title)) for t in self._types.values()]


registry = Registry()
