"""Admin forms that keep every sign-in identifier unique across accounts (identity/identifiers.py)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from identity.identifiers import PHONE, PHONE_FIELD, clean_identifiers, user_fields
from identity.models import Profile


def _add_errors(form: forms.BaseForm, error: ValidationError) -> None:
    for field, errors in error.error_dict.items():
        form.add_error(field if field in form.fields else None, errors)


def identifier_checked(form_class: type[forms.ModelForm]) -> type[forms.ModelForm]:
    """``form_class`` (a user add or change form) refusing a username or e-mail address that another
    account holds in any kind, case-insensitively, and a new username that mixes scripts."""

    class IdentifierCheckedForm(form_class):  # type: ignore[valid-type, misc]
        def clean(self) -> dict[str, Any]:
            super().clean()
            data = self.cleaned_data
            adding = self.instance._state.adding
            fields = user_fields(self._meta.model)
            values = {kind: data[field] for kind, field in fields.items()
                      if field in data and field not in self.errors and (adding or field in self.changed_data)}
            if not values:
                return data
            try:
                cleaned = clean_identifiers(values, exclude=None if adding else self.instance)
            except ValidationError as error:
                _add_errors(self, error)
            else:
                data.update({fields[kind]: value for kind, value in cleaned.items()})
            return data

    IdentifierCheckedForm.__name__ = IdentifierCheckedForm.__qualname__ = form_class.__name__
    return IdentifierCheckedForm


class ProfileForm(forms.ModelForm):
    """The profile inline: a changed phone number must be E.164 and no other account's identifier."""

    class Meta:
        model = Profile
        fields = ["email_verified", "phone_number", "phone_number_verified"]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if PHONE_FIELD not in self.changed_data or PHONE_FIELD in self.errors or not data.get(PHONE_FIELD):
            return data
        try:
            # user_id is set by the inline formset; None while the account itself is being added.
            cleaned = clean_identifiers({PHONE: data[PHONE_FIELD]}, exclude=self.instance.user_id)
        except ValidationError as error:
            _add_errors(self, error)
        else:
            data[PHONE_FIELD] = cleaned[PHONE]
        return data
