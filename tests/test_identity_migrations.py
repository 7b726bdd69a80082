"""identity's data migrations on a database that already has accounts and tokens: the state before
them is made with the historical models (identity at 0001), then the migrations run forward."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.apps.registry import Apps
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from identity.models import Profile, SignInIdentifier
from tests.helpers import PASSWORD, authorize_params, issue_tokens, sign_in_url_from, userinfo

pytestmark = pytest.mark.django_db(transaction=True)
BEFORE = [("identity", "0001_initial")]


def migrate(targets: list[tuple[str, str]] | None = None) -> Apps:
    """Migrate to ``targets`` (every app's latest when None); the models of that state."""
    executor = MigrationExecutor(connection)
    targets = targets or executor.loader.graph.leaf_nodes()
    executor.migrate(targets)
    return MigrationExecutor(connection).loader.project_state(targets).apps


@pytest.fixture
def before_migrations(db: Any) -> Iterator[Apps]:
    """identity at 0001 (no subjects, no identifier index); every app at its latest afterwards."""
    try:
        yield migrate(BEFORE)
    finally:
        migrate()


def test_existing_users_get_distinct_random_subjects_and_their_tokens_answer_them(flow, confidential_app, user):
    body, _params = issue_tokens(flow, confidential_app)  # a token issued before the upgrade
    old_apps = migrate(BEFORE)
    try:
        OldUser = old_apps.get_model(settings.AUTH_USER_MODEL)
        assert not any(field.name == "subject" for field in old_apps.get_model("identity", "Profile")._meta.fields)
        no_profile = OldUser.objects.create(username="legacy", email="legacy@example.com", password="!")
    finally:
        migrate()
    subjects = dict(Profile.objects.values_list("user_id", "subject"))
    assert set(subjects) == {user.pk, no_profile.pk}  # the account without a profile got one
    assert len(set(subjects.values())) == 2
    for pk, subject in subjects.items():
        assert re.fullmatch(r"[0-9a-f]{32}", subject) and subject != str(pk)
    answer = userinfo(flow.client, body["access_token"])
    assert answer.status_code == 200 and answer.json()["sub"] == subjects[user.pk]


def test_indexing_existing_accounts_keeps_collisions_and_sign_in_refuses_to_guess(
        before_migrations, flow, confidential_app, password_authenticator):
    OldUser = before_migrations.get_model(settings.AUTH_USER_MODEL)
    OldProfile = before_migrations.get_model("identity", "Profile")
    password = make_password(PASSWORD)
    for username, email in [("Dave", ""), ("dave", ""),
                            ("erin1", "ERIN@example.com"), ("erin2", "erin@example.com"),
                            ("carol@example.com", ""), ("carl", "Carol@Example.com"),
                            ("ПЁТР", ""), ("пётр", ""),
                            ("frank", "frank@example.com")]:
        OldUser.objects.create(username=username, email=email, password=password)
    OldProfile.objects.create(user_id=OldUser.objects.get(username="frank").pk, phone_number="+15550001111")
    migrate()  # must not fail on the collisions

    shared = set(SignInIdentifier.objects.filter(duplicate=True).values_list("key", flat=True))
    assert shared == {"dave", "erin@example.com", "carol@example.com", "пётр"}
    assert SignInIdentifier.objects.filter(duplicate=True).count() == 8
    assert sorted(SignInIdentifier.objects.filter(duplicate=False).values_list("key", flat=True)) == [
        "+15550001111", "carl", "erin1", "erin2", "frank", "frank@example.com"]

    def sign_in(identifier: str) -> int:
        flow.client.logout()
        response = flow.authorize(authorize_params(confidential_app))
        return flow.client.post(sign_in_url_from(response), {
            "identifier": identifier, "password": PASSWORD, "authenticator": "password"}).status_code

    for ambiguous in ("dave", "DAVE", "erin@example.com", "carol@example.com", "пётр"):
        assert sign_in(ambiguous) == 400, ambiguous
    for own in ("frank", "FRANK@example.com", "erin1", "carl"):
        assert sign_in(own) == 303, own
