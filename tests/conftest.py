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

# Every log record of the session to var/artefacts/logs/, checked for secrets at the end (tests/log_capture.py).
from tests.log_capture import (  # noqa: E402, F401
    pytest_configure,
    pytest_runtestloop,
    pytest_sessionfinish,
    pytest_sessionstart,
)


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hasher() -> Any:
    """Argon2id at its lowest cost for the suite (tests/hashers.py); servers the tests start keep the real one."""
    from django.conf import settings
    from django.contrib.auth import hashers

    original = settings.PASSWORD_HASHERS
    settings.PASSWORD_HASHERS = ["tests.hashers.FastArgon2PasswordHasher", *original[1:]]
    hashers.get_hashers.cache_clear()
    hashers.get_hashers_by_algorithm.cache_clear()
    yield
    settings.PASSWORD_HASHERS = original
    hashers.get_hashers.cache_clear()
    hashers.get_hashers_by_algorithm.cache_clear()


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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A test beside Playwright's event loop (the ``page`` fixture) uses database connections of its
    own (Django keeps them per context, and the loop's is another); they are closed where they
    were opened, right after the test, or PostgreSQL would keep them until the test database is
    dropped (and refuse to drop it: "being accessed by other users")."""
    try:
        return (yield)
    finally:
        if "page" in getattr(item, "fixturenames", ()):
            from django.db import connections

            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # closing is safe here: nothing else runs
                connections.close_all()


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


@pytest.fixture
def mail_code(db: Any) -> Any:
    """The built-in ``email-code`` authenticator (read its codes from mailoutbox); transactional
    tests flush the row its data migration made, so it is made again when missing."""
    from authenticators.models import Authenticator

    authenticator, _ = Authenticator.objects.update_or_create(
        name="email-code", defaults={"auth_type": "email-code", "title": "E-mail code", "enabled": True, "sort_order": 5})
    return authenticator


# -- part mfa: second factors ------------------------------------------------------------------------
@pytest.fixture
def second_factors(db: Any) -> dict[str, Any]:
    """The second-factor authenticators the data migration creates (transactional tests flush them)."""
    from authenticators.models import Authenticator

    rows = {}
    for order, (name, title) in enumerate([("totp", "Authenticator app"), ("backup_code", "Backup code"),
                                           ("email_code", "Code by e-mail")]):
        rows[name], _ = Authenticator.objects.get_or_create(
            name=name, defaults={"auth_type": name, "title": title, "enabled": True, "sort_order": 100 + order})
    return rows


@pytest.fixture
def totp_user(user: Any, second_factors: Any) -> Any:
    """Alice with an authenticator app (its key: tests.helpers.TOTP_KEY)."""
    from tests.helpers import give_totp

    give_totp(user)
    return user


@pytest.fixture
def mfa_required(monkeypatch: Any) -> Any:
    """The experience requires MFA (every factor allowed)."""
    from experience.policy import MfaPolicy, Policy

    policy = Policy(mfa=MfaPolicy(policy="required"))
    monkeypatch.setattr("experience.policy.resolve", lambda client_id: policy)
    return policy


# -- delivery (part codes) -------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _sms_outbox(settings: Any) -> Any:
    """SMS go to identity.delivery.outbox (like django.core.mail.outbox for e-mail), empty per test."""
    from identity import delivery

    settings.PORTCULLIS_SMS_BACKEND = "identity.delivery.LocmemSmsBackend"
    delivery.outbox.clear()
    yield delivery.outbox
    delivery.outbox.clear()


@pytest.fixture
def sms_outbox(_sms_outbox: Any) -> Any:
    return _sms_outbox


@pytest.fixture
def demo_client(live_server: Any, settings: Any, transactional_db: Any) -> Any:
    """The demo client (``/demo/``) registered for the live server, as ``make run`` registers it."""
    from oauth2_provider.models import get_application_model

    from identity.models import ApplicationSettings

    settings.PORTCULLIS_DEMO = True
    Application = get_application_model()
    application = Application.objects.create(
        client_id=settings.PORTCULLIS_DEMO_CLIENT_ID, name="Portcullis demo",
        client_type=Application.CLIENT_PUBLIC, authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=f"{live_server.url}/demo/callback", post_logout_redirect_uris=f"{live_server.url}/demo/",
        algorithm=Application.RS256_ALGORITHM,
    )
    ApplicationSettings.objects.create(application=application, first_party=True)
    return application


@pytest.fixture
def silent_mail_server() -> Iterator[int]:
    """A TCP port that takes connections (the kernel completes the handshake) and never says a word:
    a mail server that hangs."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield listener.getsockname()[1]
    listener.close()
