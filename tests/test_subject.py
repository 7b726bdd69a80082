"""The subject identifier: ``sub`` tells a client nothing about the database (not the primary key,
not guessable, not reproduced by a reused key), stays the same across sign-ins, and is the same in
the ID token, userinfo and introspection; hints compare subjects."""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model

from identity.identifiers import create_user
from identity.keys import sign
from identity.models import Profile
from identity.subjects import subject_of, user_for_subject
from tests.helpers import (
    PASSWORD,
    authorize_params,
    introspect,
    issue_tokens,
    jwt_payload,
    query_of,
    refresh,
    run_together,
    userinfo,
    verify_id_token,
)

pytestmark = pytest.mark.django_db
User = get_user_model()
ISSUER = "http://testserver"
BYE = "https://rp.example.com/bye"


def introspected(client: Any, app: Any, token: str) -> dict[str, Any]:
    response = introspect(client, app, token)
    assert response.status_code == 200, response.content
    return response.json()


def signed_hint(app: Any, sub: str) -> str:
    """An ID token this server really signed, for ``app``, naming ``sub``."""
    now = int(time.time())
    return sign({"iss": ISSUER, "sub": sub, "aud": app.client_id, "iat": now, "exp": now + 600})


def test_sub_is_an_opaque_random_string_and_the_same_in_every_answer(flow, confidential_app, user):
    body, _params = issue_tokens(flow, confidential_app)
    sub = verify_id_token(flow.client, body["id_token"])["sub"]
    assert re.fullmatch(r"[0-9a-f]{32}", sub), sub
    assert sub != str(user.pk)
    assert userinfo(flow.client, body["access_token"]).json()["sub"] == sub
    assert introspected(flow.client, confidential_app, body["access_token"])["sub"] == sub
    assert introspected(flow.client, confidential_app, body["refresh_token"])["sub"] == sub
    assert Profile.objects.get(user=user).subject == sub and user_for_subject(sub) == user


def test_sub_stays_the_same_across_sign_ins_and_refreshes(flow, confidential_app, user):
    first, _params = issue_tokens(flow, confidential_app)
    flow.client.logout()
    second, _params = issue_tokens(flow, confidential_app)
    refreshed = refresh(flow.client, confidential_app, second["refresh_token"])
    assert refreshed.status_code == 200, refreshed.content
    subjects = {jwt_payload(body["id_token"])["sub"] for body in (first, second, refreshed.json())}
    assert subjects == {subject_of(user)}


def test_subjects_are_distinct_and_carry_no_order_or_pattern(db):
    subjects = [subject_of(create_user({"username": f"user{number}"})) for number in range(64)]
    assert len(set(subjects)) == 64
    assert subjects != sorted(subjects)
    for position in range(32):  # every hex digit varies: no counter, no fixed prefix
        assert len({subject[position] for subject in subjects}) > 1, position
    assert set("".join(subjects)) == set("0123456789abcdef")


def test_a_reused_primary_key_does_not_bring_the_subject_back(db):
    first = create_user({"username": "first"})
    pk, subject = first.pk, subject_of(first)
    first.delete()
    second = create_user({"username": "second", "id": pk})
    assert second.pk == pk and subject_of(second) != subject
    assert user_for_subject(subject) is None


def test_an_account_without_a_profile_gets_its_subject_on_first_use(flow, confidential_app, password_authenticator,
                                                                    django_user_model):
    nina = django_user_model.objects.create_user("nina", "nina@example.com", PASSWORD)  # a project's own code
    assert not Profile.objects.filter(user=nina).exists()
    code, params = flow.code_for(confidential_app, identifier="nina")
    body = flow.token(confidential_app, code, params).json()
    sub = jwt_payload(body["id_token"])["sub"]
    assert Profile.objects.get(user=nina).subject == sub
    assert userinfo(flow.client, body["access_token"]).json()["sub"] == sub


@pytest.mark.django_db(transaction=True)
def test_requests_that_create_a_missing_profile_at_once_agree_on_one_subject(django_user_model):
    nina = django_user_model.objects.create_user("nina", "nina@example.com", PASSWORD)
    results = run_together(6, lambda _index: subject_of(django_user_model.objects.get(pk=nina.pk)))
    assert all(isinstance(result, str) for result in results), results
    assert len(set(results)) == 1
    assert Profile.objects.filter(user=nina).count() == 1


# -- hints name subjects, never primary keys -------------------------------------------------------
def test_an_id_token_hint_naming_the_primary_key_is_not_the_signed_in_user(flow, confidential_app, user):
    flow.code_for(confidential_app)  # signed in
    params = authorize_params(confidential_app, prompt="none", id_token_hint=signed_hint(confidential_app, str(user.pk)))
    response = flow.authorize(params)
    assert response.status_code == 302 and query_of(response["Location"])["error"] == "login_required"
    params = authorize_params(confidential_app, prompt="none", id_token_hint=signed_hint(confidential_app, subject_of(user)))
    response = flow.authorize(params)
    assert response.status_code == 302 and "code" in query_of(response["Location"])


def test_a_logout_hint_naming_the_primary_key_asks_before_signing_out(flow, confidential_app, user):
    flow.code_for(confidential_app)
    asked = flow.client.get("/oauth/logout?" + urlencode({
        "id_token_hint": signed_hint(confidential_app, str(user.pk)), "post_logout_redirect_uri": BYE}))
    assert asked.status_code == 200 and not asked.has_header("Location")
    assert flow.client.session.get("_auth_user_id") == str(user.pk)  # still signed in
    done = flow.client.get("/oauth/logout?" + urlencode({
        "id_token_hint": signed_hint(confidential_app, subject_of(user)), "post_logout_redirect_uri": BYE}))
    assert done.status_code == 302 and done["Location"] == BYE
    assert "_auth_user_id" not in flow.client.session
