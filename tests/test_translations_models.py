"""The admin speaks Russian and Ukrainian: every name and help text our apps give their models,
fields, choices and admin pages is translated (a string Django makes up from a field's name is not
ours to translate, and is left out).

The strings are found by walking the models and the admin site, not listed here: a field added
tomorrow is checked tomorrow. A failure lists each missing string with where it comes from.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.utils import translation
from django.utils.functional import Promise
from oauth2_provider.models import get_application_model

APPS = ("identity", "experience", "authenticators")
LANGUAGES = ["ru", "uk"]


def _choices(where: str, choices: Any) -> Iterator[tuple[str, Any]]:
    for value, label in choices or ():
        if isinstance(label, (list, tuple)):  # a group of choices
            yield from _choices(f"{where}[{value}]", label)
        else:
            yield f"{where} choice {value!r}", label


def _of_model(model: Any) -> Iterator[tuple[str, Any]]:
    meta = model._meta
    for attr in ("verbose_name", "verbose_name_plural"):
        if attr in meta.original_attrs:  # not made up from the class name
            yield f"{meta.label}.Meta.{attr}", getattr(meta, attr)
    for field in meta.get_fields():
        if not field.concrete:
            continue
        where = f"{meta.label}.{field.name}"
        yield f"{where}.verbose_name", field.verbose_name
        yield f"{where}.help_text", field.help_text
        yield from _choices(where, getattr(field, "choices", None))


def model_strings() -> Iterator[tuple[str, Any]]:
    """(where, lazy string) for the app's verbose name, each model's names (those its Meta gives)
    and each concrete field's verbose name, help text and choice labels; and those of DOT's
    application model, which the application admin shows (django-oauth-toolkit has no ru or uk
    catalog: identity's translates its texts, see identity.application_admin)."""
    for label in APPS:
        config = apps.get_app_config(label)
        yield f"{label} (app)", config.verbose_name
        for model in config.get_models():
            yield from _of_model(model)
    yield from _of_model(get_application_model())


def _ours(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] in APPS


def admin_strings() -> Iterator[tuple[str, Any]]:
    """(where, lazy string) for our admin classes: fieldset titles, list filter titles, column and
    read-only field descriptions, action descriptions and inline names."""
    for model_admin in admin.site._registry.values():
        if not _ours(model_admin):
            continue
        name = type(model_admin).__name__
        for title, _options in model_admin.fieldsets or ():
            yield f"{name} fieldset", title
        for list_filter in model_admin.list_filter:
            if isinstance(list_filter, type):
                yield f"{name} filter {list_filter.__name__}", list_filter.title
        for attr in (*model_admin.list_display, *model_admin.readonly_fields):
            method = getattr(model_admin, attr, None) if isinstance(attr, str) else attr
            yield f"{name}.{getattr(method, '__name__', attr)} description", getattr(method, "short_description", None)
        for action in model_admin.actions or ():
            method = getattr(model_admin, action, None) if isinstance(action, str) else action
            yield f"{name} action {action}", getattr(method, "short_description", None)
        for inline in model_admin.inlines:
            for attr in ("verbose_name", "verbose_name_plural"):
                yield f"{name} inline {inline.__name__}.{attr}", inline.__dict__.get(attr)


def untranslated(strings: Iterator[tuple[str, Any]], language: str) -> list[str]:
    missing = []
    with translation.override(language):
        for where, text in strings:
            if isinstance(text, Promise) and str(text).strip():
                with translation.override(None):
                    english = str(text)
                if str(text) == english:
                    missing.append(f"{where}: {english!r}")
    return sorted(set(missing))


def test_the_walk_finds_the_strings():
    """A walk that finds nothing would pass anything."""
    found = [where for where, text in model_strings() if isinstance(text, Promise)]
    assert len(found) > 100
    assert "authenticators.Authenticator.name.help_text" in found
    assert "identity.ApplicationSettings.first_party.verbose_name" in found
    assert "oauth2_provider.Application.client_type choice 'public'" in found
    assert any(where.startswith("experience.") for where in found)
    assert sum(isinstance(text, Promise) for _where, text in admin_strings()) > 10


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_model_string_is_translated(language):
    missing = untranslated(model_strings(), language)
    assert not missing, f"{len(missing)} model strings have no {language} translation:\n" + "\n".join(missing)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_admin_string_is_translated(language):
    missing = untranslated(admin_strings(), language)
    assert not missing, f"{len(missing)} admin strings have no {language} translation:\n" + "\n".join(missing)


def test_an_untranslated_string_is_reported():
    """The check itself: a lazy string nobody translated is listed, with where it comes from."""
    from django.utils.translation import gettext_lazy

    assert untranslated(iter([("somewhere", gettext_lazy("A string nobody translated"))]), "ru") == [
        "somewhere: 'A string nobody translated'"]
