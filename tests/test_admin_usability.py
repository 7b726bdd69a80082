"""The admin as an operator uses it: every page of every registered model opens (no 500) and loads
nothing from another origin (the admin works offline, behind a strict CSP, with no CDN); the
application and authenticator lists are filtered and searched, with translated labels."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib import admin
from django.test import RequestFactory
from django.urls import reverse
from oauth2_provider.models import get_application_model

from authenticators.models import Authenticator, UserAuthenticator
from authenticators.registry import registry
from identity.models import ApplicationSettings
from tests.helpers import make_application
from tests.test_admin import one_of_each  # noqa: F401 - the fixture: a row of every model

pytestmark = pytest.mark.django_db
Application = get_application_model()

EXTERNAL = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.I)  # http://, https://, //host (any scheme with a host)
CSS_URL = re.compile(r"""(?:url\(\s*['"]?|@import\s+['"])([^'")\s]+)""", re.I)
ASSET_ATTRIBUTES = ("src", "href", "srcset", "data", "poster", "action", "formaction")
LINKS = ("a", "form")  # a link or a form to another site is not an asset the page loads


class _Assets(HTMLParser):
    """Every URL a page would load by itself: tag attributes (not links), and CSS url()/@import."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_style = tag == "style"
        for name, value in attrs:
            if value is None:
                continue
            if name == "style":
                self.urls += CSS_URL.findall(value)
            elif name in ASSET_ATTRIBUTES and tag not in LINKS:
                self.urls += [part.split()[0] for part in value.split(",") if part.strip()] if name == "srcset" else [value]

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.urls += CSS_URL.findall(data)


def external_assets(html: str) -> list[str]:
    parser = _Assets()
    parser.feed(html)
    return [url for url in parser.urls if EXTERNAL.match(url)]


def test_the_asset_check_finds_external_assets():
    """The check itself, on the forms a CDN dependency takes; a link to documentation is allowed."""
    html = """<link rel="stylesheet" href="https://cdn.example.com/a.css"><script src="//cdn.example.com/a.js"></script>
    <img srcset="/local.png 1x, http://img.example.com/b.png 2x"><style>body{background:url('https://x.example/bg.png')}</style>
    <div style="background: url(//y.example/c.png)"></div><a href="https://docs.example.com/">docs</a>
    <link rel="icon" href="/static/favicon.ico"><script src="/static/admin/js/core.js"></script>"""
    assert sorted(external_assets(html)) == sorted(["https://cdn.example.com/a.css", "//cdn.example.com/a.js",
                                                    "http://img.example.com/b.png", "//y.example/c.png",
                                                    "https://x.example/bg.png"])


def admin_pages(superuser: Any) -> list[str]:
    """The index, each app's index, and each registered model's changelist, add page (when adding is
    permitted; each type's for authenticators) and the change page of its first row (the rows of
    tests.test_admin's ``one_of_each``, whose crawler finds the 500s of every other admin page)."""
    request = RequestFactory().get("/admin/")
    request.user = superuser
    urls = [reverse("admin:index")]
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        app_index = reverse("admin:app_list", args=[opts.app_label])
        if app_index not in urls:
            urls.append(app_index)
        urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        if model_admin.has_add_permission(request):
            urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
            if model is Authenticator:  # the add page of each type, besides the type picker
                urls += [f"{urls[-1]}?{urlencode({'auth_type': t.name})}" for t in registry]
        first = model._default_manager.order_by("pk").first()
        assert first is not None, f"no {opts.label} to open: create one in tests.test_admin's one_of_each"
        urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[first.pk]))
    return urls


@pytest.mark.usefixtures("one_of_each")
def test_every_admin_page_opens_and_loads_nothing_from_another_origin(admin_client, admin_user):
    pages = admin_pages(admin_user)
    assert len(pages) > 30
    problems = []
    for url in pages:
        response = admin_client.get(url, follow=True)
        if response.status_code != 200:
            problems.append(f"{url}: {response.status_code}")
            continue
        if external := external_assets(response.content.decode()):
            problems.append(f"{url}: loads {external}")
    assert problems == []


def test_the_admin_sign_in_loads_nothing_from_another_origin(client):
    response, hops = client.get(reverse("admin:login")), 0
    while response.status_code == 302 and hops < 5:  # to the hosted sign-in page (plain 302 responses)
        response, hops = client.get(response["Location"]), hops + 1
    assert response.status_code == 200 and hops, "the admin signs in through the hosted sign-in page"
    assert b"password" in response.content.lower()
    assert external_assets(response.content.decode()) == []


# -- applications: filters and search ---------------------------------------------------------------
APPLICATIONS = "/admin/oauth2_provider/application/"


def listed(admin_client: Any, url: str, **params: str) -> list[str]:
    response = admin_client.get(url, params)
    assert response.status_code == 200
    return sorted(getattr(row, "name", None) or str(row) for row in response.context["cl"].result_list)


@pytest.fixture
def applications(db: Any) -> dict[str, Any]:
    apps = {"shop": make_application(name="Shop"),
            "mobile": make_application(name="Mobile", public=True, first_party=False),
            "console": make_application(name="Console", headless=True)}
    bare = Application.objects.create(name="Bare", client_type=Application.CLIENT_PUBLIC,
                                      authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
                                      redirect_uris="https://bare.example.com/cb")
    assert not ApplicationSettings.objects.filter(application=bare).exists()  # the defaults: not first-party
    return apps


def test_applications_are_filtered_by_first_party_and_headless(admin_client, applications):
    assert listed(admin_client, APPLICATIONS, first_party="yes") == ["Console", "Shop"]
    assert listed(admin_client, APPLICATIONS, first_party="no") == ["Bare", "Mobile"]
    assert listed(admin_client, APPLICATIONS, headless_api="yes") == ["Console"]
    assert listed(admin_client, APPLICATIONS, headless_api="no") == ["Bare", "Mobile", "Shop"]
    assert listed(admin_client, APPLICATIONS, client_type="public") == ["Bare", "Mobile"]
    assert listed(admin_client, APPLICATIONS, client_type="confidential", first_party="yes") == ["Console", "Shop"]


def test_applications_are_searched_by_name_and_client_id(admin_client, applications):
    assert listed(admin_client, APPLICATIONS, q="shop") == ["Shop"]
    assert listed(admin_client, APPLICATIONS, q=applications["mobile"].client_id) == ["Mobile"]
    assert listed(admin_client, APPLICATIONS, q="nothing-like-this") == []


def test_the_applications_list_shows_first_party_and_headless(admin_client, applications):
    html = admin_client.get(APPLICATIONS).content.decode()
    assert "column-is_first_party" in html and "column-has_headless_api" in html
    assert applications["shop"].client_id in html


@pytest.mark.parametrize(("language", "in_list", "in_add_page"), [
    ("en", ["first-party", "headless API allowed", "Client type"], ["Confidential: runs on a server"]),
    ("ru", ["собственное", "headless API разрешён", "Тип клиента", "Публичный"], ["Конфиденциальный: работает на сервере"]),
    ("uk", ["власний", "headless API дозволено", "Тип клієнта", "Публічний"], ["Конфіденційний: працює на сервері"]),
])
def test_the_application_pages_are_in_the_admins_language(admin_client, applications, language, in_list, in_add_page):
    """Portcullis's labels and help texts, and DOT's field names and choices (translated by identity)."""
    changelist = admin_client.get(APPLICATIONS, HTTP_ACCEPT_LANGUAGE=language).content.decode()
    add = admin_client.get(f"{APPLICATIONS}add/", HTTP_ACCEPT_LANGUAGE=language).content.decode()
    assert [label for label in in_list if label not in changelist] == []
    assert [label for label in in_add_page if label not in add] == []


# -- authenticators: filters and search -------------------------------------------------------------
AUTHENTICATORS = "/admin/authenticators/authenticator/"
LINKS_URL = "/admin/authenticators/userauthenticator/"


def test_authenticators_are_filtered_by_kind(admin_client, password_authenticator, second_factors):
    assert listed(admin_client, AUTHENTICATORS, kind="form") == ["password"]
    assert listed(admin_client, AUTHENTICATORS, kind="second_factor") == ["backup_code", "email_code", "totp"]
    assert listed(admin_client, AUTHENTICATORS, kind="redirect") == []
    assert listed(admin_client, AUTHENTICATORS, kind="second_factor", q="backup") == ["backup_code"]


def test_authenticators_are_searched_and_show_their_kind(admin_client, password_authenticator, second_factors):
    assert listed(admin_client, AUTHENTICATORS, q="authenticator app") == ["totp"]
    page = admin_client.get(AUTHENTICATORS, HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert "Форма входа" in page and "Второй фактор" in page  # the kind column and filter, translated
    add = admin_client.get(f"{AUTHENTICATORS}add/?auth_type=password", HTTP_ACCEPT_LANGUAGE="uk").content.decode()
    assert "Примітка для адміністраторів" in add  # the description's help text


def test_linked_authenticators_are_filtered_and_searched(admin_client, user, django_user_model, password_authenticator,
                                                          second_factors):
    bob = django_user_model.objects.create_user("bob", "bob@example.com", "x")
    UserAuthenticator.objects.create(user=user, authenticator=password_authenticator, uuid="alice-id")
    UserAuthenticator.objects.create(user=bob, authenticator=second_factors["email_code"], uuid="bob@example.com")
    assert listed(admin_client, LINKS_URL, authenticator__auth_type="password") == [str(
        UserAuthenticator.objects.get(uuid="alice-id"))]
    assert listed(admin_client, LINKS_URL, q="bob") == [str(UserAuthenticator.objects.get(uuid="bob@example.com"))]
    assert listed(admin_client, LINKS_URL, q="email_code") == [str(UserAuthenticator.objects.get(uuid="bob@example.com"))]
    assert listed(admin_client, LINKS_URL, q="alice-id") == [str(UserAuthenticator.objects.get(uuid="alice-id"))]
