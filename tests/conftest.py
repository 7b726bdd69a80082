"""Shared fixtures: applications, users, flows. The helpers they use are in tests/helpers.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import translation

from experience import policy
from identity import cors, keys
from identity.models import Profile
from tests.helpers import CHROMIUM, CHROMIUM_ARGS, PASSWORD, ClientApp, Flow, make_application


@pytest.fixture(autouse=True)
def _fresh_cache_and_keys() -> Any:
    cache.clear()
    keys._memo = None
    cors._memo = None  # the origins of applications a rolled-back test created
    policy._memo = None  # the default experience a rolled-back test saved
    yield
    keys._memo = None
    cors._memo = None
    policy._memo = None


@pytest.fixture(autouse=True)
def _default_language() -> Any:
    """Each test ends in the default language: the language of a request (LocaleMiddleware, an
    application's ui_locales) stays active in the thread, where code a later test calls directly
    (forms, validators) would inherit it."""
    yield
    translation.deactivate()






@pytest.fixture
def confidential_app(db: Any) -> ClientApp:
    return make_application()


@pytest.fixture
def public_app(db: Any) -> ClientApp:
    return make_application(public=True)


@pytest.fixture
def other_app(db: Any) -> ClientApp:
    """A second confidential client of the same provider: the attacker's own registration."""
    return make_application(name="Other relying party")


@pytest.fixture
def third_party_app(db: Any) -> ClientApp:
    return make_application(first_party=False, name="Third party")


@pytest.fixture
def password_authenticator(db: Any) -> Any:
    """The default authenticator the data migration creates (transactional tests flush it)."""
    from authenticators.models import Authenticator

    authenticator, _ = Authenticator.objects.get_or_create(
        name="password", defaults={"auth_type": "password", "title": "Password", "enabled": True}
    )
    return authenticator


@pytest.fixture
def user(db: Any, django_user_model: Any, password_authenticator: Any) -> Any:
    account = django_user_model.objects.create_user(
        "alice", "Alice@Example.com", PASSWORD, first_name="Alice", last_name="Liddell"
    )
    Profile.objects.create(user=account, email_verified=True, phone_number="+15551234567")
    return account












@pytest.fixture
def flow(client: Client) -> Flow:
    return Flow(client)






@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """Live-server threads close their connections after each request, so the PostgreSQL test
    database can be dropped at the end (persistent connections would outlive the threads)."""
    from django.conf import settings

    settings.DATABASES["default"]["CONN_MAX_AGE"] = 0


@pytest.fixture
def page() -> Iterator[Any]:
    """A Playwright page in headless Chromium (15 s per action, for a busy machine)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(15000)
        yield page
        context.close()
        browser.close()
