"""Where the hosted sign-in sends the browser afterwards when it was opened with ``?next=``."""

from __future__ import annotations

import pytest

from tests.helpers import sign_in_on_page

pytestmark = pytest.mark.django_db


def sign_in_with_next(client, next_url: str) -> str:
    started = client.get("/sign-in/", {"next": next_url})
    assert started.status_code == 302
    response = sign_in_on_page(client, started["Location"])
    assert response.status_code == 303, response.content
    return response["Location"]


def test_a_non_ascii_next_is_percent_encoded_not_mime_encoded(client, user):
    location = sign_in_with_next(client, "/account/connected-apps/?q=тест")
    assert location == "/account/connected-apps/?q=%D1%82%D0%B5%D1%81%D1%82"
    assert client.get(location).status_code == 200


@pytest.mark.parametrize("next_url", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"])
def test_a_next_leaving_the_site_goes_to_the_default_page(client, user, next_url):
    assert sign_in_with_next(client, next_url) == "/"


def test_head_on_the_sign_in_start_starts_nothing(client):
    from experience.models import Interaction

    response = client.head("/sign-in/", {"next": "/account/connected-apps/"})
    assert response.status_code == 405
    assert not Interaction.objects.exists()
