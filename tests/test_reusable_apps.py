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
