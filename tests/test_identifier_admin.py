"""An admin cannot give one account another account's e-mail, username or phone number, in any case
or kind, on the user add page, the change page or the profile inline; the page says why (never 500)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from identity.identifiers import create_user, find_user
from identity.models import Profile
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db
User = get_user_model()
TAKEN_EMAIL = "This e-mail address is already used by another account."
TAKEN_USERNAME = "This username is already used by another account."
TAKEN_PHONE = "This phone number is already used by another account."


class _FormFields(HTMLParser):
    """The values a browser would submit for the admin's change form, as they are on the page."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, Any] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        name = attributes.get("name")
        if tag == "input" and name and attributes.get("type") not in ("submit", "button", "file"):
            if attributes.get("type") in ("checkbox", "radio"):
                if "checked" in attributes:
                    self.data[name] = attributes.get("value") or "on"
            else:
                self.data[name] = attributes.get("value") or ""
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in attributes:
            self.data[self._select] = attributes.get("value") or ""
        elif tag == "textarea" and name:
            self._textarea = name
            self.data[name] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.data[self._textarea] += data


def form_of(page: Any) -> dict[str, Any]:
    assert page.status_code == 200, page.status_code
    parser = _FormFields()
    parser.feed(page.content.decode())
    parser.data.pop("csrfmiddlewaretoken", None)
    return parser.data


def field_errors(response: Any) -> list[str]:
    return [re.sub(r"<[^>]+>", "", error).strip()
            for error in re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', response.content.decode(), re.S)]


@pytest.fixture
def bob(db: Any) -> Any:
    return create_user({"username": "bob", "email": "bob@example.com"}, password=PASSWORD)


def add_user(admin_client: Any, username: str, **extra: str) -> Any:
    data = form_of(admin_client.get("/admin/auth/user/add/"))
    data.update(username=username, usable_password="true", password1=PASSWORD, password2=PASSWORD, **extra)
    return admin_client.post("/admin/auth/user/add/", data)


def change_user(admin_client: Any, account: Any, **changes: str) -> Any:
    url = f"/admin/auth/user/{account.pk}/change/"
    data = form_of(admin_client.get(url))
    data.update(changes)
    return admin_client.post(url, data)


# -- the add page ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("username", "message"), [
    ("ALICE", None),  # Django's own check says it first, in its words
    ("ａｌｉｃｅ", None),
    ("alice@EXAMPLE.com", TAKEN_USERNAME),  # alice's e-mail address
    ("+15551234567", TAKEN_USERNAME),  # alice's phone number
])
def test_the_add_page_refuses_a_username_another_account_holds(admin_client, user, username, message):
    before = User.objects.count()
    response = add_user(admin_client, username)
    assert response.status_code == 200
    errors = field_errors(response)
    assert errors, response.content[:500]
    if message:
        assert message in errors
    else:
        assert any("already" in error for error in errors), errors
    assert User.objects.count() == before


def test_the_add_page_refuses_a_username_that_mixes_scripts(admin_client, user):
    response = add_user(admin_client, "\u0430lice")  # a Cyrillic а
    assert response.status_code == 200
    assert any(error.startswith("Use the letters of one script only") for error in field_errors(response))
    assert not User.objects.filter(username="\u0430lice").exists()


def test_the_add_page_refuses_another_accounts_phone_number_in_the_profile_inline(admin_client, user):
    response = add_user(admin_client, "carol", **{"portcullis_profile-0-phone_number": "+1 555 123 4567"})
    assert response.status_code == 200
    assert TAKEN_PHONE in field_errors(response)
    assert not User.objects.filter(username="carol").exists()


def test_the_add_page_creates_an_account_whose_identifiers_are_indexed(admin_client, user):
    response = add_user(admin_client, "carol", **{"portcullis_profile-0-phone_number": "+44 20 7946 0958"})
    assert response.status_code == 302, field_errors(response)
    carol = User.objects.get(username="carol")
    assert Profile.objects.get(user=carol).phone_number == "+442079460958"
    assert find_user("CAROL") == carol and find_user("+442079460958") == carol


# -- the change page --------------------------------------------------------------------------------
@pytest.mark.parametrize(("changes", "message"), [
    ({"email": "ALICE@example.com"}, TAKEN_EMAIL),
    ({"email": "alice@example.com"}, TAKEN_EMAIL),
    ({"username": "alice@example.com"}, TAKEN_USERNAME),  # another account's e-mail as a username
    ({"username": "Alice"}, TAKEN_USERNAME),
    ({"portcullis_profile-0-phone_number": "+1-555-123-4567"}, TAKEN_PHONE),
    ({"portcullis_profile-0-phone_number": "555 1234"}, "Enter the phone number in international format, e.g. +15551234567."),
])
def test_the_change_page_refuses_another_accounts_identifier(admin_client, user, bob, changes, message):
    response = change_user(admin_client, bob, **changes)
    assert response.status_code == 200
    assert message in field_errors(response)
    bob.refresh_from_db()
    assert (bob.username, bob.email) == ("bob", "bob@example.com")
    assert Profile.objects.get(user=bob).phone_number is None


def test_the_change_page_accepts_a_new_case_of_the_accounts_own_identifiers(admin_client, user, bob):
    response = change_user(admin_client, bob, username="Bob", email="BOB@example.com")
    assert response.status_code == 302, field_errors(response)
    assert find_user("bob") == find_user("bob@example.com") == User.objects.get(username="Bob")


def test_a_legacy_account_that_shares_an_identifier_can_still_be_edited(admin_client, db):
    from django.core.management import call_command

    User.objects.bulk_create([User(username="Dave", email="dave@example.com"), User(username="dave")])
    call_command("portcullis_identifiers", stdout=open("/dev/null", "w"))  # noqa: SIM115
    elder = User.objects.get(username="Dave")
    response = change_user(admin_client, elder, first_name="David")
    assert response.status_code == 302, field_errors(response)
    # ...and giving it a name of its own settles the collision for the other account.
    response = change_user(admin_client, elder, username="dave-the-elder")
    assert response.status_code == 302, field_errors(response)
    assert find_user("dave") == User.objects.get(username="dave")


def test_the_identifier_index_is_browsable_and_read_only(admin_client, user):
    page = admin_client.get("/admin/identity/signinidentifier/?duplicate__exact=0")
    assert page.status_code == 200 and "alice@example.com" in page.content.decode()
    assert admin_client.get("/admin/identity/signinidentifier/add/").status_code == 403
