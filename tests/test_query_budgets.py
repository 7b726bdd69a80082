"""Queries per request on the hot path, at or under SPEC.md's targets (authorize 4, token 5,
userinfo 1), and one commit at most per request (the writes of one request share a transaction).
SQL statements are counted apart from the ``BEGIN``/``COMMIT`` Django logs beside them.
Transactional tests, so that what is counted is what production runs (no test savepoints)."""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlencode

import pytest
from django.apps import apps
from django.db import connection

from identity.subjects import subject_of
from tests.helpers import PASSWORD, authorize_params, database_work, pkce_pair, query_of

pytestmark = pytest.mark.django_db(transaction=True)


def signed_in_authorize(flow, app, challenge):
    """Sign in once (not counted) and answer the parameters of a fresh authorization request."""
    flow.code_for(app, authorize_params(app, pkce_pair()[1]))
    return authorize_params(app, challenge)


def test_authorize_makes_at_most_4_queries_and_one_commit(flow, confidential_app, user):
    verifier, challenge = pkce_pair()
    params = signed_in_authorize(flow, confidential_app, challenge)
    with database_work() as work:
        response = flow.client.get("/oauth/authorize?" + urlencode(params))
    assert response.status_code == 302 and "code" in query_of(response["Location"])
    assert len(work.statements) <= 4, work.statements
    assert work.commits == 1, work.ordered  # the code and its record together
    if connection.vendor == "postgresql":  # in one statement, which needs no BEGIN / COMMIT
        assert len(work.statements) <= 3 and not work.control, work.ordered


def test_token_makes_at_most_4_queries_and_one_commit(flow, confidential_app, user):
    verifier, challenge = pkce_pair()
    code, params = flow.code_for(confidential_app, authorize_params(confidential_app, challenge))
    flow.client.get("/.well-known/jwks.json")  # the signing key exists, as on any running server
    with database_work() as work:
        response = flow.token(confidential_app, code, params, code_verifier=verifier)
    assert response.status_code == 200
    assert {"access_token", "refresh_token", "id_token"} <= set(response.json())
    assert len(work.statements) <= 4, work.statements  # SPEC's budget is 5
    assert work.commits == 1, work.ordered  # the token pair and the code's consumption together
    if connection.vendor == "postgresql":  # in one statement, which needs no BEGIN / COMMIT
        assert len(work.statements) <= 3 and not work.control, work.ordered


def test_a_refresh_makes_at_most_3_queries_and_one_commit(flow, confidential_app, user):
    from tests.helpers import refresh, tokens_for

    body = tokens_for(flow, confidential_app)
    with database_work() as work:
        response = refresh(flow.client, confidential_app, body["refresh_token"])
    assert response.status_code == 200, response.content
    assert {"access_token", "refresh_token", "id_token"} <= set(response.json())
    # the token with its client, user and access token; its family's sign-in; the rotation
    assert len(work.statements) <= (3 if connection.vendor == "postgresql" else 6), work.statements
    assert work.commits == 1, work.ordered  # the rotation's writes together
    if connection.vendor == "postgresql":  # in one statement, which needs no BEGIN / COMMIT
        assert not work.control, work.ordered


def test_userinfo_makes_at_most_1_query_and_no_commit(flow, confidential_app, user):
    verifier, challenge = pkce_pair()
    code, params = flow.code_for(confidential_app, authorize_params(confidential_app, challenge))
    access_token = flow.token(confidential_app, code, params, code_verifier=verifier).json()["access_token"]
    with database_work() as work:
        response = flow.client.get("/oauth/userinfo", HTTP_AUTHORIZATION=f"Bearer {access_token}")
    assert response.status_code == 200 and response.json()["sub"] == subject_of(user)
    assert len(work.statements) <= 1 and work.commits == 0, work.ordered


def test_discovery_and_jwks_make_no_queries_once_warm(client, db, django_assert_max_num_queries):
    client.get("/.well-known/jwks.json")
    with django_assert_max_num_queries(0):
        assert client.get("/.well-known/openid-configuration").status_code == 200
        assert client.get("/.well-known/jwks.json").status_code == 200


def hosted_sign_in(flow, app, monkeypatch, *, first_device: bool) -> Any:
    """The statements of a hosted password sign-in's POST from a new browser (a fresh install's
    second factors; the authenticators from memory), for an account that signed in before (from
    another browser, or, with ``first_device``, from none it still knows)."""
    from experience import policy
    from experience.models import KnownDevice

    # A steady process: its memory of the experience is not checked against the shared cache
    # during the test (the other test worker clears that cache, which would read it again).
    monkeypatch.setattr(policy, "VERSION_CHECK_SECONDS", 3600.0)
    monkeypatch.setattr(policy, "_memo", None)  # read from this test's database, not an earlier test's
    # a fresh install's second factors (a transactional test before this one may have flushed them)
    importlib.import_module("authenticators.migrations.0005_default_second_factors").create_second_factors(apps, None)
    flow.code_for(app, authorize_params(app, pkce_pair()[1]))  # warm, not counted
    flow.client.cookies.clear()
    if first_device:
        KnownDevice.objects.all().delete()
    response = flow.authorize(authorize_params(app, pkce_pair()[1]))
    sign_in = response["Location"]
    assert flow.client.get(sign_in).status_code == 200
    with database_work() as work:
        response = flow.client.post(sign_in, {"identifier": "alice", "password": PASSWORD, "authenticator": "password"})
    assert response.status_code == 303, response.content[:300]
    assert work.commits == 1, work.ordered
    assert not any("authenticators_authenticator" in sql for sql in work.statements), work.statements
    # whether the user has TOTP or backup codes: asked by the look-up of the account itself
    (account,) = [sql for sql in work.statements if '"identity_signinidentifier"' in sql]
    assert "otp_totp_totpdevice" in account and "authenticators_backupcode" in account, account
    assert sum("otp_totp_totpdevice" in sql or "authenticators_backupcode" in sql for sql in work.statements) == 1
    return work


SENT_TOGETHER = ('"django_session"', '"identity_usersession"', '"auth_user"', '"experience_knowndevice"',
                 '"experience_auditevent"')


def test_an_accounts_first_sign_in_makes_4_statements_on_postgresql_and_one_commit(flow, confidential_app, user,
                                                                                   monkeypatch):
    """On PostgreSQL: the interaction, the account (by its identifier, with its profile and whether
    it has each second factor: identity.identifiers.ask_with_account), the interaction's completion,
    and one statement of every write nothing reads back (the old session's row deleted, the new one
    written and tracked, last_login, the device, the events of the device and of the sign-in:
    identity.later); the Django peers' login makes 5, with no device, audit or session-tracking
    rows. Elsewhere each of those writes is a statement of its own."""
    work = hosted_sign_in(flow, confidential_app, monkeypatch, first_device=True)
    audit_statements = sum("experience_auditevent" in sql for sql in work.statements)
    assert audit_statements == (1 if connection.vendor == "postgresql" else 2), work.statements
    if connection.vendor != "postgresql":
        assert len(work.statements) <= 11, "\n".join(sql[:90] for sql in work.ordered)
        return
    assert len(work.statements) <= 4, "\n".join(sql[:90] for sql in work.ordered)
    (together,) = [sql for sql in work.statements if sql.startswith("WITH")]
    assert all(table in together for table in SENT_TOGETHER), together
    assert not any(table in sql for sql in work.statements if sql is not together for table in SENT_TOGETHER[:2])


def test_a_sign_in_from_a_new_browser_makes_5_statements_on_postgresql(flow, confidential_app, user, monkeypatch):
    """What a new browser of an account that knew another adds: the application's name, which the
    notice e-mail gives (the device's event goes with the other writes)."""
    work = hosted_sign_in(flow, confidential_app, monkeypatch, first_device=False)
    postgresql = connection.vendor == "postgresql"
    assert len(work.statements) <= (5 if postgresql else 12), "\n".join(sql[:90] for sql in work.ordered)
    assert sum('FROM "oauth2_provider_application"' in sql for sql in work.statements) == 1, work.statements
    audit_statements = sum("experience_auditevent" in sql for sql in work.statements)
    assert audit_statements == (1 if postgresql else 2), work.statements  # elsewhere an INSERT each
