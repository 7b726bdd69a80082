"""Queries per request on the hot path, at or under SPEC.md's targets (authorize 4, token 5,
userinfo 1), and one commit at most per request (the writes of one request share a transaction).
SQL statements are counted apart from the ``BEGIN``/``COMMIT`` Django logs beside them.
Transactional tests, so that what is counted is what production runs (no test savepoints)."""

from __future__ import annotations

import importlib
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


def test_a_hosted_password_sign_in_makes_at_most_11_queries_on_postgresql_and_one_commit(flow, confidential_app, user, monkeypatch):
    """A returning account's sign-in from a new browser, with a fresh install's second factors: the
    POST's writes (the interaction's completion, the old session's deletion, the new session's row,
    the tracked session, last_login, the device, its audit event and the sign-in's) share one
    transaction, the two audit events one statement on PostgreSQL, the device's row and whether
    the account had one before it one statement there too; whether the user has TOTP or backup
    codes is one statement. Its authenticators come from memory."""
    from experience import policy

    # A steady process: its memory of the experience is not checked against the shared cache
    # during the test (the other test worker clears that cache, which would read it again).
    monkeypatch.setattr(policy, "VERSION_CHECK_SECONDS", 3600.0)
    monkeypatch.setattr(policy, "_memo", None)  # read from this test's database, not an earlier test's
    # a fresh install's second factors (a transactional test before this one may have flushed them)
    importlib.import_module("authenticators.migrations.0005_default_second_factors").create_second_factors(apps, None)
    flow.code_for(confidential_app, authorize_params(confidential_app, pkce_pair()[1]))  # warm, not counted
    flow.client.cookies.clear()
    response = flow.authorize(authorize_params(confidential_app, pkce_pair()[1]))
    sign_in = response["Location"]
    assert flow.client.get(sign_in).status_code == 200
    with database_work() as work:
        response = flow.client.post(sign_in, {"identifier": "alice", "password": PASSWORD, "authenticator": "password"})
    assert response.status_code == 303, response.content[:300]
    postgresql = connection.vendor == "postgresql"
    # 11 on PostgreSQL: an account's first sign-in makes 10 (docs/scaling.md); this one, from a new
    # browser, also reads the application, whose name the new-device e-mail gives.
    assert len(work.statements) <= (11 if postgresql else 13), "\n".join(sql[:90] for sql in work.ordered)
    assert sum('FROM "oauth2_provider_application"' in sql for sql in work.statements) == 1, work.statements
    device_statements = sum("experience_knowndevice" in sql for sql in work.statements)
    assert device_statements == (1 if postgresql else 2), work.statements  # elsewhere the INSERT, then a SELECT
    audit_statements = sum("experience_auditevent" in sql for sql in work.statements)
    assert audit_statements == (1 if postgresql else 2), work.statements  # elsewhere an INSERT each
    assert sum("otp_totp_totpdevice" in sql or "authenticators_backupcode" in sql for sql in work.statements) == 1
    assert work.commits == 1, work.ordered
    assert sum('"django_session"' in sql for sql in work.statements) == 2, work.statements  # DELETE, INSERT
    assert not any("authenticators_authenticator" in sql for sql in work.statements), work.statements
