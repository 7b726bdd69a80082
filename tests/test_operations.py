"""What an operator does: bring a signing key, clean up expired rows."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from jwcrypto import jwk

from experience.models import AuditEvent, Interaction
from identity.models import AuthorizationRecord, SigningKey
from tests.helpers import authorize_params, jwt_header, pkce_pair

pytestmark = pytest.mark.django_db


def test_a_signing_key_from_the_environment_signs_the_id_tokens(settings, flow, confidential_app, user, tmp_path):
    key = jwk.JWK.generate(kty="RSA", size=2048)
    path = tmp_path / "signing.pem"
    path.write_bytes(key.export_to_pem(private_key=True, password=None))
    settings.PORTCULLIS_SIGNING_KEY_FILE = str(path)
    verifier, challenge = pkce_pair()
    code, params = flow.code_for(confidential_app, authorize_params(confidential_app, challenge))
    id_token = flow.token(confidential_app, code, params, code_verifier=verifier).json()["id_token"]
    assert jwt_header(id_token)["kid"] == key.thumbprint()
    assert SigningKey.objects.get(active=True).kid == key.thumbprint()
    published = flow.client.get("/.well-known/jwks.json").json()["keys"]
    assert key.thumbprint() in {entry["kid"] for entry in published}


def test_cleanup_deletes_expired_interactions_and_finished_authorizations(flow, confidential_app, user):
    verifier, challenge = pkce_pair()
    code, params = flow.code_for(confidential_app, authorize_params(confidential_app, challenge))
    assert flow.token(confidential_app, code, params, code_verifier=verifier).status_code == 200
    Interaction.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    live = AuthorizationRecord.objects.get()
    finished = AuthorizationRecord.objects.create(
        application=confidential_app.application, user=user, auth_time=timezone.now(), amr=["pwd"])
    AuthorizationRecord.objects.update(created_at=timezone.now() - timedelta(days=365))
    from oauth2_provider.models import get_access_token_model, get_grant_model

    stale = get_grant_model().objects.create(
        application=confidential_app.application, user=user, code="stale-code", redirect_uri="https://rp.example.com/cb",
        expires=timezone.now() - timedelta(minutes=1), code_challenge="x" * 43, code_challenge_method="S256")
    expired = get_access_token_model().objects.create(
        application=confidential_app.application, user=user, token="expired-access-token", scope="openid",
        expires=timezone.now() - timedelta(minutes=1))
    call_command("portcullis_cleanup")
    assert not Interaction.objects.exists()
    assert not get_grant_model().objects.filter(pk=stale.pk).exists()  # what cleartokens deletes, too
    assert not get_access_token_model().objects.filter(pk=expired.pk).exists()
    assert get_access_token_model().objects.filter(expires__gt=timezone.now()).count() == 1  # the live one
    assert list(AuthorizationRecord.objects.all()) == [live]  # its refresh token still lives
    assert not AuthorizationRecord.objects.filter(pk=finished.pk).exists()


def test_cleanup_prunes_audit_events_past_their_retention(db, settings, capsys, user):
    now = timezone.now()
    for age in (0, 29, 31, 400):
        AuditEvent.objects.create(kind=AuditEvent.SIGN_IN_FAILED, identifier="alice", reason=f"{age} days",
                                  created_at=now - timedelta(days=age))
    call_command("portcullis_cleanup")  # the default keeps a year
    assert sorted(AuditEvent.objects.values_list("reason", flat=True)) == ["0 days", "29 days", "31 days"]
    assert "1 audit events past their retention" in capsys.readouterr().out

    settings.PORTCULLIS_AUDIT_RETENTION_DAYS = 30
    call_command("portcullis_cleanup")
    assert sorted(AuditEvent.objects.values_list("reason", flat=True)) == ["0 days", "29 days"]

    settings.PORTCULLIS_AUDIT_RETENTION_DAYS = 0  # kept forever
    AuditEvent.objects.update(created_at=now - timedelta(days=5000))
    call_command("portcullis_cleanup")
    assert AuditEvent.objects.count() == 2


def test_bootstrap_prepares_the_embedded_server_once(settings, tmp_path, capsys, django_user_model):
    from oauth2_provider.models import get_application_model

    settings.VAR_DIR = tmp_path
    call_command("portcullis_bootstrap", base_url="http://127.0.0.1:8123")
    printed = capsys.readouterr().out
    credentials = tmp_path / "credentials.json"
    assert oct(credentials.stat().st_mode & 0o777) == "0o600"
    saved = json.loads(credentials.read_text())
    assert f"password: {saved['demo']}" in printed and f"password: {saved['admin']}" in printed
    assert django_user_model.objects.get(username="admin").is_superuser
    assert django_user_model.objects.get(username="demo").check_password(saved["demo"])
    demo = get_application_model().objects.get(client_id=settings.PORTCULLIS_DEMO_CLIENT_ID)
    assert demo.redirect_uris.split() == ["http://127.0.0.1:8123/demo/callback", "http://localhost:8123/demo/callback"]
    assert demo.client_type == "public" and demo.portcullis_settings.first_party
    assert SigningKey.objects.filter(active=True).count() == 1
    call_command("portcullis_bootstrap", base_url="http://127.0.0.1:8123")  # idempotent
    assert "(unchanged)" not in capsys.readouterr().out  # the saved passwords are printed again
    assert django_user_model.objects.filter(username__in=["admin", "demo"]).count() == 2


def test_login_url_of_the_standalone_server_leads_to_the_hosted_sign_in(client, db):
    from django.contrib.auth.views import redirect_to_login

    response = redirect_to_login("/account/connected-apps/")
    assert response["Location"] == "/sign-in/?next=/account/connected-apps/"
    assert client.get(response["Location"]).status_code == 302  # an interaction starts


def test_a_configured_signing_key_is_imported_once_and_does_not_undo_a_rotation(settings, tmp_path):
    """SIGNING_KEY_FILE names a key: imported and made active the first time. A rotation in admin then
    holds (the variable still names the older key), and a process configured with the older key
    (a rolling restart onto a new key) does not make it active again."""
    from identity import keys

    first, second = (jwk.JWK.generate(kty="RSA", size=2048) for _ in range(2))
    path = tmp_path / "signing.pem"
    path.write_bytes(first.export_to_pem(private_key=True, password=None))
    settings.PORTCULLIS_SIGNING_KEY_FILE = str(path)
    assert keys.ensure_active_key().kid == first.thumbprint()
    rotated = keys.rotate()
    assert keys.key_set().active.thumbprint() == rotated.kid  # rebuilt after the rotation: not undone
    assert SigningKey.objects.get(active=True).kid == rotated.kid
    path.write_bytes(second.export_to_pem(private_key=True, password=None))  # the new key, rolled out
    assert keys.ensure_active_key().kid == second.thumbprint()
    path.write_bytes(first.export_to_pem(private_key=True, password=None))  # a process not yet restarted
    assert keys.ensure_active_key().kid == second.thumbprint()
    assert SigningKey.objects.get(active=True).kid == second.thumbprint()
