"""Enterprise single sign-on by e-mail domain: an e-mail of a domain bound to an enabled
redirect-type authenticator signs in there. Password and code sign-in for it are refused with the
``sso`` error (``sso_required``, the authenticator, the URL that starts it for this interaction),
on the hosted page (the browser goes there, the e-mail passed upstream as ``login_hint``) and in
the Experience API; the answer is the same whether or not the account exists."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

from authenticators.models import Authenticator
from experience.models import AuditEvent
from identity.models import ApplicationSettings
from tests import fake_upstream
from tests.helpers import (
    PASSWORD,
    authorize_params,
    follow_to_code,
    make_application,
    pkce_pair,
    query_of,
    sign_in_url_from,
)


@pytest.fixture
def acme(db: Any) -> Any:
    """The Acme corporation's SSO: e-mails of acme.test sign in there."""
    fake_upstream.register()
    authenticator = Authenticator.objects.create(name="acme", auth_type=fake_upstream.TYPE, title="Acme", sort_order=20,
                                                 options={"domains": ["Acme.test"], "sign_up": True})
    yield authenticator
    fake_upstream.unregister()


@pytest.fixture
def bob(user: Any) -> Any:
    """An existing account of the SSO domain, with a password."""
    return get_user_model().objects.create_user("bob", "bob@acme.test", PASSWORD)


def sign_in_page(client: Client, app: Any) -> str:
    return sign_in_url_from(client.get("/oauth/authorize", authorize_params(app, pkce_pair()[1])))


def api_interaction(client: Client) -> str:
    return client.post("/api/experience/", {}, content_type="application/json").json()["id"]


def without_uid(body: dict[str, Any], uid: str) -> dict[str, Any]:
    return {"sso": {**body["sso"], "url": body["sso"]["url"].replace(uid, "<id>")}}


# -- the hosted page ---------------------------------------------------------------------------------------------
def test_a_password_sign_in_of_an_sso_email_goes_to_its_authenticator(client, bob, acme, confidential_app):
    sign_in_url = sign_in_page(client, confidential_app)
    response = client.post(sign_in_url, {"authenticator": "password", "identifier": "Bob@ACME.test", "password": PASSWORD})
    assert response.status_code == 303
    assert response["Location"] == f"http://testserver{sign_in_url}?authenticator=acme"
    assert "_auth_user_id" not in client.session  # the right password signs nobody in here
    upstream = client.get(response["Location"])
    assert upstream.status_code == 302 and upstream["Location"].startswith(fake_upstream.UPSTREAM)
    assert query_of(upstream["Location"])["login_hint"] == "Bob@ACME.test"
    assert follow_to_code(client, client.get("/auth/acme/callback", {
        "state": query_of(upstream["Location"])["state"], "code": "bob@acme.test"}))


def test_the_answer_is_the_same_whether_or_not_the_account_exists(client, bob, acme, confidential_app):
    answers = []
    for identifier, password in (("bob@acme.test", PASSWORD), ("bob@acme.test", "wrong"), ("nobody@acme.test", "x")):
        browser = Client()
        sign_in_url = sign_in_page(browser, confidential_app)
        response = browser.post(sign_in_url, {"authenticator": "password", "identifier": identifier, "password": password})
        answers.append((response.status_code, response["Location"].replace(sign_in_url, "<page>"), response.content))
    assert answers[0] == answers[1] == answers[2]
    assert not AuditEvent.objects.filter(kind=AuditEvent.SIGN_IN_FAILED).exists()  # nothing was tried


def test_a_code_to_an_sso_email_is_never_sent(client, user, acme, mail_code, confidential_app):
    sign_in_url = sign_in_page(client, confidential_app)
    response = client.post(f"{sign_in_url}?authenticator=email-code",
                           {"authenticator": "email-code", "action": "send", "email": "carol@acme.test"})
    assert response.status_code == 303 and response["Location"].endswith("?authenticator=acme")
    assert mail.outbox == []


def test_other_domains_and_a_disabled_sso_are_not_routed(client, user, acme, confidential_app):
    sign_in_url = sign_in_page(client, confidential_app)
    response = client.post(sign_in_url, {"authenticator": "password", "identifier": "alice@example.com",
                                         "password": PASSWORD})
    assert follow_to_code(client, response)
    acme.enabled = False
    acme.save()
    get_user_model().objects.create_user("bob", "bob@acme.test", PASSWORD)
    browser = Client()
    sign_in_url = sign_in_page(browser, confidential_app)
    response = browser.post(sign_in_url, {"authenticator": "password", "identifier": "bob@acme.test", "password": PASSWORD})
    assert follow_to_code(browser, response)


# -- the Experience API ----------------------------------------------------------------------------------------
def test_the_experience_api_answers_the_sso_error_shape(client, bob, acme):
    uid = api_interaction(client)
    answer = client.post(f"/api/experience/{uid}/password", {"identifier": "bob@acme.test", "password": PASSWORD},
                         content_type="application/json")
    assert answer.status_code == 400
    assert answer.json() == {"sso": {
        "code": "sso_required", "message": "Your organisation signs you in. Continue with single sign-on.",
        "authenticator": "acme", "url": f"http://testserver/sign-in/{uid}/?authenticator=acme"}}
    upstream = client.get(answer.json()["sso"]["url"])  # the same interaction continues there
    assert upstream.status_code == 302 and query_of(upstream["Location"])["login_hint"] == "bob@acme.test"


def test_the_experience_api_answers_the_same_for_an_unknown_account_and_for_codes(client, bob, acme, mail_code):
    bodies = []
    for path, body in (("password", {"identifier": "bob@acme.test", "password": PASSWORD}),
                       ("password", {"identifier": "nobody@acme.test", "password": "whatever"}),
                       ("code", {"email": "bob@acme.test"}), ("code", {"email": "nobody@acme.test"})):
        uid = api_interaction(client)
        answer = client.post(f"/api/experience/{uid}/{path}", body, content_type="application/json")
        assert answer.status_code == 400
        bodies.append(without_uid(answer.json(), uid))
    assert all(body == bodies[0] for body in bodies)
    assert mail.outbox == []


def test_a_headless_interaction_is_sent_to_the_authorize_url(rf, bob, acme):
    from experience import interaction as engine
    from experience import sso
    from experience.errors import EngineError

    app = make_application(public=True)
    ApplicationSettings.objects.filter(application=app.application).update(headless_api=True)
    request = rf.post("/api/auth/sign-in")
    request.session = {}
    interaction = engine.Interaction.objects.create(uid="h", client_id=app.client_id, state={"verifications": []},
                                                    expires_at="2999-01-01T00:00Z")
    with pytest.raises(EngineError) as routed:
        sso.route(request, interaction, "bob@acme.test")
    assert re.fullmatch(rf"http://testserver/api/auth/acme/authorize-url\?client_id={app.client_id}",
                        routed.value.data["url"])


@pytest.mark.parametrize("page", ["create-account", "forgot-password"])
def test_sign_up_and_forgot_password_codes_for_an_sso_email_go_there_too(client, bob, acme, mail_code, confidential_app,
                                                                         page):
    sign_in_url = sign_in_page(client, confidential_app)
    page_url = f"{sign_in_url}{page}/"
    assert "https://upstream.test" in client.get(page_url)["Content-Security-Policy"]
    response = client.post(page_url, {"email": "new@acme.test", "action": "send"})
    assert response.status_code == 303, response.content
    assert response["Location"] == f"http://testserver{sign_in_url}?authenticator=acme"
    assert mail.outbox == []
