from tests.helpers import authorize_params, pkce_pair


def test_code_flow_with_test_client(flow, confidential_app, user):
    verifier, challenge = pkce_pair()
    code, params = flow.code_for(confidential_app, authorize_params(confidential_app, challenge))
    response = flow.token(confidential_app, code, params, code_verifier=verifier)
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) >= {"access_token", "refresh_token", "id_token", "expires_in", "token_type", "scope"}
    info = flow.client.get("/oauth/userinfo", HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")
    assert info.status_code == 200, info.content
    assert info.json()["email"] == "Alice@example.com"
