"""identity.backends.SessionUserBackend: a Portcullis sign-in's session loads its user with a
statement built once; credentials and permissions stay Django's ModelBackend's."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import BACKEND_SESSION_KEY, authenticate
from django.contrib.auth.hashers import check_password
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from identity import backends
from tests.helpers import PASSWORD, Flow, authorize_params, query_of

pytestmark = pytest.mark.django_db


def signed_in(client: Client, flow: Flow, app: Any) -> dict[str, str]:
    code, params = flow.code_for(app)
    assert code
    return params


def test_a_hosted_sign_in_records_the_session_user_backend_and_authorizes_with_it(
        client: Client, flow: Flow, confidential_app: Any, user: Any) -> None:
    signed_in(client, flow, confidential_app)
    assert client.session[BACKEND_SESSION_KEY] == backends.PATH
    # the next authorization request loads the user through it: a code, no sign-in page
    response = flow.authorize(authorize_params(confidential_app))
    assert response.status_code == 302 and "code" in query_of(response["Location"]), response


def test_the_session_s_user_is_one_statement_and_the_same_user(client: Client, flow: Flow, confidential_app: Any,
                                                               user: Any) -> None:
    signed_in(client, flow, confidential_app)
    request = type("Request", (), {"session": client.session})()
    from django.contrib.auth import get_user

    with CaptureQueriesContext(connection) as queries:
        loaded = get_user(request)
    assert loaded.pk == user.pk and loaded.username == user.username and loaded.is_authenticated
    assert len(queries) == 1 and 'FROM "auth_user"' in queries[0]["sql"], queries.captured_queries


def test_a_deactivated_user_is_signed_out_on_the_next_request(client: Client, flow: Flow, confidential_app: Any,
                                                              user: Any) -> None:
    signed_in(client, flow, confidential_app)
    user.is_active = False
    user.save(update_fields=["is_active"])
    response = flow.authorize(authorize_params(confidential_app))
    assert response.status_code in (302, 303) and "/sign-in/" in response["Location"], response


def test_a_deleted_user_is_nobody(client: Client, flow: Flow, confidential_app: Any, user: Any) -> None:
    signed_in(client, flow, confidential_app)
    assert backends.SessionUserBackend().get_user(user.pk) is not None
    user.delete()
    assert backends.SessionUserBackend().get_user(user.pk) is None
    response = flow.authorize(authorize_params(confidential_app))
    assert response.status_code in (302, 303) and "/sign-in/" in response["Location"], response


def test_a_session_signed_in_by_django_s_backend_still_loads(client: Client, user: Any) -> None:
    client.force_login(user, backend=backends.MODEL_BACKEND)  # the admin's login form, a session from before
    assert client.session[BACKEND_SESSION_KEY] == backends.MODEL_BACKEND
    assert client.get("/account/connected-apps/").status_code == 200
    client.logout()
    assert client.get("/account/connected-apps/").status_code == 302  # (the page needs a signed-in user)


def test_a_wrong_password_is_hashed_once_and_a_right_one_signs_in_through_django_s_backend(
        user: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from django.contrib.auth import hashers

    checks: list[str] = []

    def counted(password: str, encoded: str, *args: Any, **kwargs: Any) -> bool:
        checks.append(password)
        return check_password(password, encoded, *args, **kwargs)

    monkeypatch.setattr(hashers, "check_password", counted)
    monkeypatch.setattr("django.contrib.auth.base_user.check_password", counted)
    assert authenticate(username=user.username, password="not-" + PASSWORD) is None
    assert len(checks) == 1  # the session backend checks no credentials: one hash, not two
    signed = authenticate(username=user.username, password=PASSWORD)
    assert signed is not None and signed.backend == backends.MODEL_BACKEND


def test_permissions_are_django_s(user: Any) -> None:
    assert not user.has_perm("auth.view_user")
    user.user_permissions.add(Permission.objects.get(codename="view_user"))
    fresh = backends.SessionUserBackend().get_user(user.pk)
    assert fresh.has_perm("auth.view_user")
    assert backends.SessionUserBackend().get_all_permissions(fresh) == set()  # granted by ModelBackend alone


def test_a_project_without_it_signs_in_with_django_s_backend(client: Client, flow: Flow, confidential_app: Any,
                                                             user: Any, settings: Any) -> None:
    settings.AUTHENTICATION_BACKENDS = [backends.MODEL_BACKEND]
    signed_in(client, flow, confidential_app)
    assert client.session[BACKEND_SESSION_KEY] == backends.MODEL_BACKEND
    response = flow.authorize(authorize_params(confidential_app))
    assert response.status_code == 302 and "code" in query_of(response["Location"]), response
