"""The worked example of docs/extending.md shipped as its own app (examples/magic_link): an admin adds
a magic-link authenticator, the sign-in page offers it, the e-mailed link signs the user in and
returns to the client application; a link works once, and not once it expired.

The app is installed here as a host project installs it: on the path (``pip install -e
examples/magic_link``), in INSTALLED_APPS, its URLs included (this module is the test's URLconf)."""

from __future__ import annotations

import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.test import Client
from django.urls import include, path
from django.utils import timezone

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples" / "magic_link"))

from authenticators.models import Authenticator, OneTimeCode  # noqa: E402
from authenticators.registry import registry  # noqa: E402
from config.urls import urlpatterns as portcullis_urlpatterns  # noqa: E402
from tests.helpers import PASSWORD, REDIRECT_URI, authorize_params, query_of  # noqa: E402

pytestmark = pytest.mark.django_db

urlpatterns = [path("magic-link/", include("magic_link.urls")), *portcullis_urlpatterns]


@pytest.fixture
def magic_link_app(settings: Any) -> Any:
    """The example app installed in the project (its ``ready()`` registers the type)."""
    settings.INSTALLED_APPS = [*django_settings.INSTALLED_APPS, "magic_link"]
    settings.ROOT_URLCONF = __name__
    assert registry.get("magic-link") is not None
    yield
    registry.unregister("magic-link")


@pytest.fixture
def magic_link(admin_client: Any, magic_link_app: Any) -> Authenticator:
    """Added by an admin: the type picker offers it, its settings are fields."""
    assert "?auth_type=magic-link" in admin_client.get("/admin/authenticators/authenticator/add/").content.decode()
    url = "/admin/authenticators/authenticator/add/?auth_type=magic-link"
    assert 'name="options-show_code"' in admin_client.get(url).content.decode()
    response = admin_client.post(url, {"name": "magic", "title": "E-mail me a link", "description": "", "enabled": "on",
                                       "sort_order": "2", "options-show_code": "on"})
    assert response.status_code == 302
    return Authenticator.objects.get(name="magic")


def ask_for_link(flow: Any, app: Any, email: str = "alice@example.com") -> tuple[str, str]:
    """Start at the client, pick the magic-link tab, send the link: the sign-in page and the link."""
    sign_in = flow.authorize(authorize_params(app))["Location"]
    page = flow.client.get(sign_in).content.decode()
    assert "E-mail me a link" in page  # a tab of the sign-in page
    tab = flow.client.get(sign_in + "?authenticator=magic").content.decode()
    assert 'name="email"' in tab
    sent = flow.client.post(sign_in + "?authenticator=magic", {"authenticator": "magic", "action": "send", "email": email})
    assert sent.status_code == 303, sent.content
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["Alice@example.com"] and "Your sign-in link" in message.subject
    link = re.search(r"http://testserver/magic-link/\S+", str(message.body))
    assert link, message.body
    return sign_in, link.group(0)


def follow(client: Any, link: str) -> Any:
    """Open the link (a page with a button), then press the button."""
    split = urlsplit(link)
    page = client.get(f"{split.path}?{split.query}")
    assert page.status_code == 200, page.content
    html = page.content.decode()
    fields = dict(re.findall(r'<input type="hidden" name="(code_id|code)" value="([^"]*)"', html))
    return client.post(split.path, fields)


def test_the_link_signs_the_user_in_and_returns_to_the_client(flow, confidential_app, user, magic_link):
    sign_in, link = ask_for_link(flow, confidential_app)
    code = query_of(link)["code"]
    assert f"Or enter this code on the page where you asked for the link: {code}" in mail.outbox[0].body
    done = follow(flow.client, link)
    assert done.status_code == 303
    back = flow.client.get(done["Location"])  # the authorization request, resumed
    assert back["Location"].startswith(REDIRECT_URI)
    token = flow.token(confidential_app, query_of(back["Location"])["code"],
                       {"redirect_uri": authorize_params(confidential_app)["redirect_uri"]})
    assert token.status_code == 200 and "id_token" in token.json()


def test_opening_the_link_does_not_spend_it(flow, confidential_app, user, magic_link):
    """A mail scanner that opens links (GET) leaves the link working for its owner."""
    _, link = ask_for_link(flow, confidential_app)
    split = urlsplit(link)
    for _ in range(3):
        assert flow.client.get(f"{split.path}?{split.query}").status_code == 200
    assert OneTimeCode.objects.get().consumed_at is None
    assert follow(flow.client, link).status_code == 303


def test_a_link_used_twice_is_refused(flow, confidential_app, user, magic_link):
    _, link = ask_for_link(flow, confidential_app)
    assert follow(flow.client, link).status_code == 303
    split = urlsplit(link)
    again = flow.client.post(split.path, dict(query_of(link)))
    assert again.status_code == 400 and "Location" not in again
    assert OneTimeCode.objects.get().consumed_at is not None


def test_a_tampered_link_is_refused_and_the_real_one_still_works(flow, confidential_app, user, magic_link):
    _, link = ask_for_link(flow, confidential_app)
    path_only = urlsplit(link).path
    wrong = flow.client.post(path_only, {**query_of(link), "code": "000000" if query_of(link)["code"] != "000000" else "111111"})
    assert wrong.status_code == 400
    assert "This link cannot sign you in" in wrong.content.decode()
    assert follow(flow.client, link).status_code == 303


def test_an_expired_link_is_refused(flow, confidential_app, user, magic_link):
    _, link = ask_for_link(flow, confidential_app)
    OneTimeCode.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    refused = follow(flow.client, link)
    assert refused.status_code == 400 and "Location" not in refused
    assert "This link cannot sign you in" in refused.content.decode()
    # the page leads back to the sign-in page, where a new link can be asked for
    assert 'href="/sign-in/' in refused.content.decode()


def test_a_link_opened_in_another_browser_signs_nobody_in(flow, confidential_app, user, magic_link):
    _, link = ask_for_link(flow, confidential_app)
    other = Client()
    split = urlsplit(link)
    assert other.get(f"{split.path}?{split.query}").status_code == 400
    assert other.post(split.path, dict(query_of(link))).status_code == 400
    assert OneTimeCode.objects.get().consumed_at is None  # still good in the browser that asked


def test_an_unknown_address_gets_the_same_answer_and_no_mail(flow, confidential_app, user, magic_link):
    sign_in = flow.authorize(authorize_params(confidential_app))["Location"]
    sent = flow.client.post(sign_in + "?authenticator=magic",
                            {"authenticator": "magic", "action": "send", "email": "nobody@example.com"})
    assert sent.status_code == 303 and mail.outbox == []


def test_the_password_still_works_beside_it(flow, confidential_app, user, magic_link):
    sign_in = flow.authorize(authorize_params(confidential_app))["Location"]
    done = flow.client.post(sign_in, {"authenticator": "password", "identifier": "alice", "password": PASSWORD})
    assert done.status_code == 303


@pytest.mark.parametrize(("language", "expected"), [("ru", "Ссылка для входа"), ("uk", "Посилання для входу")])
def test_the_example_app_brings_its_translations(magic_link_app, language, expected):
    from django.utils import translation

    with translation.override(language):
        assert translation.gettext("Magic link") == expected
        assert "%(minutes)s" in translation.ngettext(
            "The link works once and expires in %(minutes)s minute. Open it in the browser where you asked for it.",
            "The link works once and expires in %(minutes)s minutes. Open it in the browser where you asked for it.", 5)
