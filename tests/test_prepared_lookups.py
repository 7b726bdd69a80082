"""The compiled-once lookups give what the ORM gives, with the related objects already loaded."""

from __future__ import annotations

import hashlib

import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext

from identity.prepared import PreparedLookup
from identity.validators import AccessToken
from tests.helpers import authorize_params, pkce_pair

pytestmark = pytest.mark.django_db


def access_tokens(checksum):
    return AccessToken.objects.select_related("application", "user__portcullis_profile").filter(token_checksum=checksum)


def test_a_prepared_lookup_matches_the_orm(flow, confidential_app, user, django_assert_num_queries):
    verifier, challenge = pkce_pair()
    code, params = flow.code_for(confidential_app, authorize_params(confidential_app, challenge))
    raw = flow.token(confidential_app, code, params, code_verifier=verifier).json()["access_token"]
    checksum = hashlib.sha256(raw.encode()).hexdigest()
    lookup = PreparedLookup(access_tokens)
    expected = access_tokens(checksum).get()
    for _ in range(2):  # compiled on the first call, reused on the second
        with django_assert_num_queries(1):
            found = lookup.get(checksum)
            assert (found.pk, found.scope, found.expires, found.resource) == (
                expected.pk, expected.scope, expected.expires, expected.resource)
            assert found.application.client_id == confidential_app.client_id
            assert found.user.get_username() == "alice"
            assert found.user.portcullis_profile.email_verified is True
    assert lookup.get("0" * 64) is None


postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql",
                                     reason="prepared statements are PostgreSQL's (the suite's PostgreSQL run has them)")


def prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


@postgresql_only
def test_on_postgresql_a_lookup_is_prepared_after_five_runs_and_answers_the_same(flow, confidential_app, user):
    verifier, challenge = pkce_pair()
    code, params = flow.code_for(confidential_app, authorize_params(confidential_app, challenge))
    raw = flow.token(confidential_app, code, params, code_verifier=verifier).json()["access_token"]
    checksum = hashlib.sha256(raw.encode()).hexdigest()
    lookup = PreparedLookup(access_tokens)
    assert connection.connection.prepare_threshold == 5  # config.settings' default
    before = prepared_statements()
    with CaptureQueriesContext(connection) as captured:
        found = [lookup.get(checksum) for _ in range(7)]
    assert len(captured.captured_queries) == 7  # in Django's query log, as any query
    assert {token.pk for token in found} == {access_tokens(checksum).get().pk}
    assert all(token.user.get_username() == "alice" for token in found)
    new = [statement for statement in prepared_statements() if statement not in before]
    assert len(new) == 1 and new[0].startswith('SELECT "oauth2_provider_accesstoken"."id"'), new
    assert lookup.get("0" * 64) is None


@postgresql_only
def test_without_a_prepare_threshold_nothing_is_prepared(flow, confidential_app, user, monkeypatch):
    monkeypatch.setattr(connection.connection, "prepare_threshold", None)  # DATABASE_PREPARE_THRESHOLD=0
    before = prepared_statements()
    lookup = PreparedLookup(access_tokens)
    assert [lookup.get("1" * 64) for _ in range(7)] == [None] * 7
    assert prepared_statements() == before


@postgresql_only
def test_a_database_error_in_a_lookup_is_djangos(db):
    lookup = PreparedLookup(lambda value: AccessToken.objects.extra(where=["1/0 = 1"]).filter(token_checksum=value))
    with pytest.raises(DatabaseError) as raised:
        lookup.get("2" * 64)
    assert type(raised.value).__module__.startswith("django.db")
