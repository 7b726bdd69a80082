"""The three apps are a reusable package: a host project that only adds them and includes their
URLs (tests/minimal) signs a user in, in a process of its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_minimal_host_project_signs_a_user_in():
    result = subprocess.run([sys.executable, "-m", "tests.minimal.sign_in"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout)
    assert outcome["sign_in_status"] == 303
    assert outcome["consent_shown"] is True  # not marked first-party: the default asks for consent
    assert outcome["iss"] == "http://testserver/id"  # the issuer follows where the URLs are mounted
    assert outcome["token_status"] == 200
    assert outcome["userinfo"]["email"] == "bob@example.com"
    assert outcome["secret_hasher"] == "portcullis_sha256"  # DOT's policy came from the apps
    assert outcome["token_endpoint"] == "http://testserver/id/oauth/token"
    # A @login_required page of the host project: the hosted sign-in, then back to the page.
    assert outcome["login_required"] == ["/id/sign-in/?next=/account/", "/account/", "hello bob"]
    # The host project lists no middleware of ours: the apps put it before CSRF themselves, so a
    # form in another charset than UTF-8 is a 400, not a 500 from Django's own 400 handler.
    middleware = outcome["middleware"]
    assert middleware.index("identity.middleware.ReadableBodyMiddleware") + 1 == middleware.index(
        "django.middleware.csrf.CsrfViewMiddleware")
    assert outcome["utf16_form_status"] == 400
    assert "identity.W003" not in outcome["check_ids"]
    assert "identity.E002" in outcome["check_ids"]  # DEBUG off and no PORTCULLIS_ISSUER: it must set one
