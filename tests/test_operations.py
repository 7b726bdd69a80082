"""What an operator does: bring a signing key, clean up expired rows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from jwcrypto import jwk

from experience.models import Interaction
from identity.models import AuthorizationRecord, SigningKey
from tests.conftest import authorize_params, pkce_pair
from tests.oidc_helpers import jwt_header

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
    call_command("portcullis_cleanup")
    assert not Interaction.objects.exists()
    assert list(AuthorizationRecord.objects.all()) == [live]  # its refresh token still lives
    assert not AuthorizationRecord.objects.filter(pk=finished.pk).exists()
