"""SECURITY.md "Passwords and sign-in" lines not attacked elsewhere (the table in docs/security.md
names every line's tests): the session key changes after each factor, on the hosted pages and
through the Experience API."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from tests.helpers import PASSWORD, authorize_params, pkce_pair, sign_in_url_from, totp_now

pytestmark = pytest.mark.django_db
API = "/api/experience/"


def session_key(client: Client) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def api_post(client: Client, path: str, body: Any = None) -> Any:
    token = client.cookies["csrftoken"].value
    return client.post(path, json.dumps(body or {}), content_type="application/json", headers={"X-CSRFToken": token})


# -- the session key changes after each factor ----------------------------------------------------------
def test_the_session_key_changes_after_the_password_and_after_the_second_factor_on_the_pages(
        flow, confidential_app, totp_user):
    _verifier, challenge = pkce_pair()
    sign_in = sign_in_url_from(flow.authorize(authorize_params(confidential_app, challenge)))
    before = session_key(flow.client)
    response = flow.client.post(sign_in, {"identifier": "alice", "password": PASSWORD, "authenticator": "password"})
    assert response.status_code == 303 and response["Location"].endswith("/second-factor/")
    after_password = session_key(flow.client)
    assert after_password != before
    assert "_auth_user_id" not in flow.client.session  # not signed in yet: only the key rotated

    # An attacker holding the key from before the password (session fixation) has no interaction.
    fixed = Client()
    fixed.cookies[settings.SESSION_COOKIE_NAME] = before
    assert fixed.get(response["Location"]).status_code in (400, 404, 410)

    done = flow.client.post(f"{response['Location']}?authenticator=totp",
                            {"authenticator": "totp", "action": "verify", "code": totp_now()})
    assert done.status_code == 303
    assert session_key(flow.client) not in (before, after_password)


def test_the_session_key_changes_after_each_factor_through_the_api(client, totp_user):
    assert client.get(API + "config").status_code == 200
    state = api_post(client, API, {"event": "sign_in"}).json()
    before = session_key(client)
    password = api_post(client, f"{API}{state['id']}/password", {"identifier": "alice", "password": PASSWORD})
    assert password.status_code == 200 and password.json()["next_step"] == "second_factor_required"
    after_password = session_key(client)
    assert after_password != before

    stale = Client()
    stale.cookies[settings.SESSION_COOKIE_NAME] = before
    assert stale.get(f"{API}{state['id']}").status_code == 404  # the old key no longer owns it

    second = api_post(client, f"{API}{state['id']}/totp", {"code": totp_now()})
    assert second.status_code == 200 and second.json()["next_step"] == "submit"
    after_second = session_key(client)
    assert after_second not in (before, after_password)
    assert client.get(f"{API}{state['id']}").status_code == 200  # the interaction stays this browser's
    assert "redirect_to" in api_post(client, f"{API}{state['id']}/submit").json()


def test_a_refused_factor_keeps_the_session_key(client, totp_user):
    assert client.get(API + "config").status_code == 200
    state = api_post(client, API, {"event": "sign_in"}).json()
    before = session_key(client)
    wrong = api_post(client, f"{API}{state['id']}/password", {"identifier": "alice", "password": "wrong password!"})
    assert wrong.status_code == 400
    assert session_key(client) == before
