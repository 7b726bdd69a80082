"""Run in its own process with tests.minimal.settings: sign a user in through the reusable apps."""

import base64
import hashlib
import json
import os
import secrets
import sys
from urllib.parse import parse_qs, urlencode, urlsplit

os.environ["DJANGO_SETTINGS_MODULE"] = "tests.minimal.settings"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402


def main() -> dict:
    setup_test_environment()
    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model
    from oauth2_provider.models import get_application_model

    Application = get_application_model()
    get_user_model().objects.create_user("bob", "bob@example.com", "a long enough passphrase")
    secret = secrets.token_urlsafe(32)
    app = Application.objects.create(
        name="host app", client_type="confidential", authorization_grant_type="authorization-code",
        redirect_uris="https://host.example.com/cb", client_secret=secret, algorithm="RS256",
    )
    client = Client()
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {"response_type": "code", "client_id": app.client_id, "redirect_uri": "https://host.example.com/cb",
              "scope": "openid email", "state": "s1", "nonce": "n1", "code_challenge": challenge,
              "code_challenge_method": "S256"}
    to_sign_in = client.get("/id/oauth/authorize?" + urlencode(params))
    signed_in = client.post(to_sign_in["Location"], {"identifier": "BOB@example.com", "password": "a long enough passphrase",
                                                     "authenticator": "password"})
    resumed = client.get(signed_in["Location"])
    consent_page = resumed.content.decode() if resumed.status_code == 200 else ""
    key = consent_page.split('name="key" value="')[1].split('"')[0]
    answered = client.post("/id/oauth/authorize/consent", {"key": key, "decision": "allow"})
    callback = client.get(answered["Location"])
    query = parse_qs(urlsplit(callback["Location"]).query)
    token = client.post("/id/oauth/token", {"grant_type": "authorization_code", "code": query["code"][0],
                                            "redirect_uri": "https://host.example.com/cb", "code_verifier": verifier},
                        HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"{app.client_id}:{secret}".encode()).decode())
    body = token.json()
    userinfo = client.get("/id/oauth/userinfo", HTTP_AUTHORIZATION=f"Bearer {body['access_token']}").json()
    app.refresh_from_db()
    browser = Client()  # a host page behind @login_required: LOGIN_URL leads to the hosted sign-in
    to_login = browser.get("/account/")
    sign_in_page = browser.get(to_login["Location"])
    back = browser.post(sign_in_page["Location"], {"identifier": "bob", "password": "a long enough passphrase",
                                                    "authenticator": "password"})
    account_page = browser.get(back["Location"])
    discovery = client.get("/id/.well-known/openid-configuration").json()
    browser = Client(enforce_csrf_checks=True, raise_request_exception=False)
    browser.cookies["csrftoken"] = "A" * 32
    utf16 = browser.generic("POST", "/id/oauth/authorize/consent", f"key=k&csrfmiddlewaretoken={'A' * 32}".encode("utf-16"),
                            content_type="application/x-www-form-urlencoded; charset=utf-16")
    from django.conf import settings
    from django.core import checks

    return {
        "middleware": settings.MIDDLEWARE,
        "utf16_form_status": utf16.status_code,
        "check_ids": sorted(message.id for message in checks.run_checks()),
        "sign_in_status": to_sign_in.status_code,
        "consent_shown": 'name="decision" value="allow"' in consent_page,
        "iss": query["iss"][0],
        "token_status": token.status_code,
        "userinfo": userinfo,
        "secret_hasher": app.client_secret.split("$")[0],
        "password_hasher": get_user_model().objects.get(username="bob").password.split("$")[0],
        "token_endpoint": discovery["token_endpoint"],
        "login_required": [to_login["Location"], back["Location"], account_page.content.decode()],
    }


if __name__ == "__main__":
    json.dump(main(), sys.stdout)
