"""No request of any shape makes a server error.

A deterministic table of malformed requests thrown at every endpoint. Each case says what a client
must see: OAuth endpoints answer in the OAuth error format (JSON with ``error``, 4xx); the
authorization endpoint shows an error page and never redirects anywhere unregistered; every other
page answers 4xx (or a harmless page) — never 500.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import pytest
from django.test import Client

from tests.helpers import (
    CSRF_SECRET,
    FORM,
    HUGE,
    MULTIPART_UTF16,
    NUL,
    REDIRECT_URI,
    UNREADABLE_FORMS,
    URLENCODED,
    Flow,
    authorize_params,
    issue_tokens,
)

BYE = "https://rp.example.com/bye"

# What a case must produce.
OAUTH = "oauth"              # 4xx, JSON object with a string "error"
OAUTH_OR_OK = "oauth_or_ok"  # 2xx is a legitimate answer (RFC 7009 / 7662); any 4xx is in OAuth format
METHOD = "method"            # wrong HTTP method: 405
PAGE = "page"                # 4xx error page, no redirect at all
AUTHZ = "authz"              # no redirect except to the registered redirect URI (with an error) or our sign-in
SAFE = "safe"                # anything but 5xx; a redirect only to something registered or our own pages


@dataclass
class Case:
    id: str
    method: str
    path: str
    query: str | list[tuple[str, str]] | None = None
    data: bytes | str | list[tuple[str, str]] | None = None
    content_type: str = "application/x-www-form-urlencoded"
    headers: dict[str, str] = field(default_factory=dict)
    expect: str = SAFE
    signed_in: bool = False


# -- building blocks --------------------------------------------------------------------------------
def b64(raw: bytes | str) -> str:
    return base64.b64encode(raw.encode("latin-1") if isinstance(raw, str) else raw).decode()


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": "Basic " + b64(f"{quote(client_id, safe='')}:{quote(secret, safe='')}")}


GARBAGE_AUTH_HEADERS = {
    "basic_not_base64": "Basic !!!not*base64!!!",
    "basic_no_colon": "Basic " + b64("justaname"),
    "basic_non_utf8": "Basic " + b64(b"\xff\xfe:\xfd\xfc"),
    "basic_nul": "Basic " + b64("\x00:\x00"),
    "basic_empty": "Basic ",
    "basic_bare": "Basic",
    "basic_huge": "Basic " + b64(HUGE + ":" + HUGE),
    "basic_percent_garbage": "Basic " + b64("%ZZ%:%ff"),
    "basic_non_ascii": "Basic \u00e9\u00e8",
    "basic_lowercase_garbage": "basic !!!",
    "bearer_garbage": "Bearer garbage",
    "bearer_bare": "Bearer",
    "bearer_spaces": "Bearer    ",
    "bearer_huge": "Bearer " + HUGE,
    "bearer_non_ascii": "Bearer \u00e9\u00e8",
    "digest": 'Digest username="x"',
    "only_spaces": "   ",
}

# A valid authorization request is "$AUTHZ" (query) for the confidential app; placeholders in
# strings: $CID / $SECRET (confidential), $PID (public).
CASES: list[Case] = []


def add(*cases: Case) -> None:
    CASES.extend(cases)


# -- token endpoint ---------------------------------------------------------------------------------
TOKEN = "/oauth/token"
add(
    Case("token-empty", "POST", TOKEN, data=b"", expect=OAUTH),
    Case("token-no-grant-type", "POST", TOKEN, data=[("client_id", "$CID"), ("client_secret", "$SECRET")], expect=OAUTH),
    Case("token-grant-password", "POST", TOKEN, data=[("grant_type", "password"), ("username", "alice"), ("password", "x"), ("client_id", "$CID"), ("client_secret", "$SECRET")], expect=OAUTH),
    Case("token-grant-client-credentials", "POST", TOKEN, data=[("grant_type", "client_credentials"), ("client_id", "$CID"), ("client_secret", "$SECRET")], expect=OAUTH),
    Case("token-grant-implicit", "POST", TOKEN, data=[("grant_type", "implicit"), ("client_id", "$CID"), ("client_secret", "$SECRET")], expect=OAUTH),
    Case("token-grant-nul", "POST", TOKEN, data=[("grant_type", NUL), ("client_id", "$CID"), ("client_secret", "$SECRET")], expect=OAUTH),
    Case("token-grant-huge", "POST", TOKEN, data=[("grant_type", HUGE), ("client_id", "$CID"), ("client_secret", "$SECRET")], expect=OAUTH),
    Case("token-code-missing", "POST", TOKEN, data=[("grant_type", "authorization_code"), ("redirect_uri", REDIRECT_URI), ("client_id", "$CID"), ("client_secret", "$SECRET")], expect=OAUTH),
    Case("token-code-garbage", "POST", TOKEN, data=[("grant_type", "authorization_code"), ("code", "garbage"), ("redirect_uri", REDIRECT_URI), ("client_id", "$CID"), ("client_secret", "$SECRET")], expect=OAUTH),
    Case("token-code-nul", "POST", TOKEN, data=[("grant_type", "authorization_code"), ("code", NUL), ("redirect_uri", REDIRECT_URI), ("client_id", "$CID"), ("client_secret", "$SECRET")], expect=OAUTH),
    Case("token-code-nul-inside", "POST", TOKEN, data=[("grant_type", "authorization_code"), ("code", "abc\x00def"), ("redirect_uri", REDIRECT_URI), ("client_id", "$CID"), ("client_secret", "$SECRET")], expect=OAUTH),
    Case("token-code-huge", "POST", TOKEN, data=[("grant_type", "authorization_code"), ("code", HUGE), ("redirect_uri", REDIRECT_URI), ("client_id", "$CID"), ("client_secret", "$SECRET")], expect=OAUTH),
    Case("token-code-non-utf8", "POST", TOKEN, data="grant_type=authorization_code&code=%ff%fe%fd&redirect_uri=https%3A%2F%2Frp.example.com%2Fcallback&client_id=$CID&client_secret=$SECRET", expect=OAUTH),
    Case("token-code-unicode", "POST", TOKEN, data=[("grant_type", "authorization_code"), ("code", "\u2603\U0001f600"), ("redirect_uri", REDIRECT_URI), ("client_id", "$CID"), ("client_secret", "$SECRET")], expect=OAUTH),
    Case("token-code-lone-surrogate", "POST", TOKEN, data="grant_type=authorization_code&code=%ed%a0%80&redirect_uri=x&client_id=$CID&client_secret=$SECRET", expect=OAUTH),
    Case("token-redirect-nul", "POST", TOKEN, data=[("grant_type", "authorization_code"), ("code", "garbage"), ("redirect_uri", NUL), ("client_id", "$CID"), ("client_secret", "$SECRET")], expect=OAUTH),
    Case("token-verifier-nul", "POST", TOKEN, data=[("grant_type", "authorization_code"), ("code", "garbage"), ("redirect_uri", REDIRECT_URI), ("code_verifier", NUL), ("client_id", "$PID")], expect=OAUTH),
    Case("token-verifier-huge", "POST", TOKEN, data=[("grant_type", "authorization_code"), ("code", "garbage"), ("redirect_uri", REDIRECT_URI), ("code_verifier", HUGE), ("client_id", "$PID")], expect=OAUTH),
    Case("token-client-id-nul", "POST", TOKEN, data=[("grant_type", "authorization_code"), ("code", "x"), ("redirect_uri", REDIRECT_URI), ("client_id", NUL), ("client_secret", "x")], expect=OAUTH),
    Case("token-client-id-nul-inside", "POST", TOKEN, data=[("grant_type", "authorization_code"), ("code", "x"), ("redirect_uri", REDIRECT_URI), ("client_id", "$CID\x00"), ("client_secret", "$SECRET")], expect=OAUTH),
    Case("token-client-id-huge", "POST", TOKEN, data=[("grant_type", "authorization_code"), ("code", "x"), ("redirect_uri", REDIRECT_URI), ("client_id", HUGE)], expect=OAUTH),
    Case("token-client-id-non-utf8", "POST", TOKEN, data="grant_type=authorization_code&code=x&redirect_uri=x&client_id=%ff%c0%af", expect=OAUTH),
    Case("token-client-secret-nul", "POST", TOKEN, data=[("grant_type", "authorization_code"), ("code", "x"), ("redirect_uri", REDIRECT_URI), ("client_id", "$CID"), ("client_secret", NUL)], expect=OAUTH),
    Case("token-client-secret-non-utf8", "POST", TOKEN, data="grant_type=authorization_code&code=x&redirect_uri=x&client_id=$CID&client_secret=%ff%fe", expect=OAUTH),
    Case("token-wrong-secret", "POST", TOKEN, data=[("grant_type", "authorization_code"), ("code", "x"), ("redirect_uri", REDIRECT_URI), ("client_id", "$CID"), ("client_secret", "wrong")], expect=OAUTH),
    Case("token-unknown-client", "POST", TOKEN, data=[("grant_type", "authorization_code"), ("code", "x"), ("redirect_uri", REDIRECT_URI), ("client_id", "nobody")], expect=OAUTH),
    Case("token-dup-grant-type", "POST", TOKEN, data="grant_type=authorization_code&grant_type=refresh_token&code=x&client_id=$CID&client_secret=$SECRET", expect=OAUTH),
    Case("token-dup-client-id", "POST", TOKEN, data="grant_type=authorization_code&code=x&client_id=$CID&client_id=$PID&client_secret=$SECRET", expect=OAUTH),
    Case("token-dup-code", "POST", TOKEN, data="grant_type=authorization_code&code=a&code=b&client_id=$CID&client_secret=$SECRET&redirect_uri=x", expect=OAUTH),
    Case("token-refresh-garbage", "POST", TOKEN, data=[("grant_type", "refresh_token"), ("refresh_token", "garbage"), ("client_id", "$CID"), ("client_secret", "$SECRET")], expect=OAUTH),
    Case("token-refresh-nul", "POST", TOKEN, data=[("grant_type", "refresh_token"), ("refresh_token", NUL), ("client_id", "$CID"), ("client_secret", "$SECRET")], expect=OAUTH),
    Case("token-refresh-huge", "POST", TOKEN, data=[("grant_type", "refresh_token"), ("refresh_token", HUGE), ("client_id", "$CID"), ("client_secret", "$SECRET")], expect=OAUTH),
    Case("token-refresh-missing", "POST", TOKEN, data=[("grant_type", "refresh_token"), ("client_id", "$CID"), ("client_secret", "$SECRET")], expect=OAUTH),
    Case("token-refresh-scope-nul", "POST", TOKEN, data=[("grant_type", "refresh_token"), ("refresh_token", "x"), ("scope", NUL), ("client_id", "$CID"), ("client_secret", "$SECRET")], expect=OAUTH),
    Case("token-json-body", "POST", TOKEN, data=json.dumps({"grant_type": "authorization_code", "code": "x", "client_id": "$CID", "client_secret": "$SECRET"}), content_type="application/json", expect=OAUTH),
    Case("token-json-garbage", "POST", TOKEN, data=b"{not json", content_type="application/json", expect=OAUTH),
    Case("token-text-plain", "POST", TOKEN, data=b"grant_type=authorization_code&code=x", content_type="text/plain", expect=OAUTH),
    Case("token-xml", "POST", TOKEN, data=b"<grant_type>authorization_code</grant_type>", content_type="application/xml", expect=OAUTH),
    Case("token-octets", "POST", TOKEN, data=b"\x00\xff\xfe" * 100, content_type="application/octet-stream", expect=OAUTH),
    Case("token-bogus-charset", "POST", TOKEN, data=b"grant_type=authorization_code&code=x", content_type="application/x-www-form-urlencoded; charset=bogus-charset", expect=OAUTH),
    Case("token-utf16-charset", "POST", TOKEN, data="grant_type=authorization_code&code=x".encode("utf-16"), content_type="application/x-www-form-urlencoded; charset=utf-16", expect=OAUTH),
    Case("token-multipart-no-boundary", "POST", TOKEN, data=b"--x\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\nauthorization_code\r\n--x--", content_type="multipart/form-data", expect=OAUTH),
    Case("token-multipart-bad-boundary", "POST", TOKEN, data=b"garbage", content_type="multipart/form-data; boundary=\x00\x01", expect=OAUTH),
    Case("token-multipart-truncated", "POST", TOKEN, data=b"--xyz\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\nauthorization_co", content_type="multipart/form-data; boundary=xyz", expect=OAUTH),
    Case("token-params-in-query", "POST", TOKEN, query=[("grant_type", "authorization_code"), ("code", "x"), ("client_id", "$CID"), ("client_secret", "$SECRET")], data=b"", expect=OAUTH),
    Case("token-query-non-utf8", "POST", TOKEN, query="code=%ff%fe&client_id=%c0%80", data=b"", expect=OAUTH),
    Case("token-too-many-fields", "POST", TOKEN, data="&".join(f"f{i}=x" for i in range(1500)), expect=OAUTH),
)
for name, value in GARBAGE_AUTH_HEADERS.items():
    add(Case(f"token-auth-{name}", "POST", TOKEN, data=[("grant_type", "authorization_code"), ("code", "x"), ("redirect_uri", REDIRECT_URI)], headers={"HTTP_AUTHORIZATION": value}, expect=OAUTH))
add(
    Case("token-auth-basic-unknown-client", "POST", TOKEN, data=[("grant_type", "authorization_code"), ("code", "x"), ("redirect_uri", REDIRECT_URI)], headers=basic("nobody", "x"), expect=OAUTH),
    Case("token-auth-basic-nul-client", "POST", TOKEN, data=[("grant_type", "authorization_code"), ("code", "x"), ("redirect_uri", REDIRECT_URI)], headers=basic(NUL, NUL), expect=OAUTH),
    Case("token-auth-basic-and-post-differ", "POST", TOKEN, data=[("grant_type", "authorization_code"), ("code", "x"), ("redirect_uri", REDIRECT_URI), ("client_id", "$PID")], headers=basic("$CID", "$SECRET"), expect=OAUTH),
)
for method in ("GET", "PUT", "PATCH", "DELETE"):
    add(Case(f"token-method-{method}", method, TOKEN, query=[("grant_type", "authorization_code"), ("code", "x")], expect=METHOD))

# -- revocation -------------------------------------------------------------------------------------
REVOKE = "/oauth/revoke"
add(
    Case("revoke-empty", "POST", REVOKE, data=b"", expect=OAUTH),
    Case("revoke-no-client", "POST", REVOKE, data=[("token", "garbage")], expect=OAUTH),
    Case("revoke-unknown-client", "POST", REVOKE, data=[("token", "garbage"), ("client_id", "nobody")], expect=OAUTH),
    Case("revoke-client-id-nul", "POST", REVOKE, data=[("token", "garbage"), ("client_id", NUL)], expect=OAUTH),
    Case("revoke-client-id-huge", "POST", REVOKE, data=[("token", "garbage"), ("client_id", HUGE)], expect=OAUTH),
    Case("revoke-client-id-non-utf8", "POST", REVOKE, data="token=x&client_id=%ff%fe", expect=OAUTH),
    Case("revoke-wrong-secret", "POST", REVOKE, data=[("token", "garbage"), ("client_id", "$CID"), ("client_secret", "wrong")], expect=OAUTH),
    Case("revoke-token-missing", "POST", REVOKE, data=[("client_id", "$CID"), ("client_secret", "$SECRET")], expect=OAUTH),
    Case("revoke-token-garbage", "POST", REVOKE, data=[("token", "garbage"), ("client_id", "$CID"), ("client_secret", "$SECRET")], expect=OAUTH_OR_OK),
    Case("revoke-token-nul", "POST", REVOKE, data=[("token", NUL), ("client_id", "$CID"), ("client_secret", "$SECRET")], expect=OAUTH_OR_OK),
    Case("revoke-token-nul-public", "POST", REVOKE, data=[("token", "a\x00b"), ("client_id", "$PID")], expect=OAUTH_OR_OK),
    Case("revoke-token-huge", "POST", REVOKE, data=[("token", HUGE), ("client_id", "$CID"), ("client_secret", "$SECRET")], expect=OAUTH_OR_OK),
    Case("revoke-token-non-utf8", "POST", REVOKE, data="token=%ff%fe%fd&client_id=$CID&client_secret=$SECRET", expect=OAUTH_OR_OK),
    Case("revoke-token-lone-surrogate", "POST", REVOKE, data="token=%ed%a0%80&client_id=$CID&client_secret=$SECRET", expect=OAUTH_OR_OK),
    Case("revoke-hint-garbage", "POST", REVOKE, data=[("token", "garbage"), ("token_type_hint", "\x00garbage"), ("client_id", "$CID"), ("client_secret", "$SECRET")], expect=OAUTH_OR_OK),
    Case("revoke-hint-refresh", "POST", REVOKE, data=[("token", NUL), ("token_type_hint", "refresh_token"), ("client_id", "$CID"), ("client_secret", "$SECRET")], expect=OAUTH_OR_OK),
    Case("revoke-dup-token", "POST", REVOKE, data="token=a&token=b&client_id=$CID&client_secret=$SECRET", expect=OAUTH_OR_OK),
    Case("revoke-dup-client", "POST", REVOKE, data="token=a&client_id=$CID&client_id=$PID&client_secret=$SECRET", expect=OAUTH_OR_OK),
    Case("revoke-json-body", "POST", REVOKE, data=json.dumps({"token": "x", "client_id": "$CID", "client_secret": "$SECRET"}), content_type="application/json", expect=OAUTH),
    Case("revoke-json-garbage", "POST", REVOKE, data=b"\xff{", content_type="application/json", expect=OAUTH),
    Case("revoke-text-plain", "POST", REVOKE, data=b"token=x", content_type="text/plain", expect=OAUTH),
    Case("revoke-multipart-no-boundary", "POST", REVOKE, data=b"--x\r\n", content_type="multipart/form-data", expect=OAUTH),
    Case("revoke-too-many-fields", "POST", REVOKE, data="&".join(f"f{i}=x" for i in range(1500)), expect=OAUTH),
)
for name, value in GARBAGE_AUTH_HEADERS.items():
    add(Case(f"revoke-auth-{name}", "POST", REVOKE, data=[("token", "garbage")], headers={"HTTP_AUTHORIZATION": value}, expect=OAUTH))
for method in ("GET", "PUT", "DELETE"):
    add(Case(f"revoke-method-{method}", method, REVOKE, query=[("token", "x")], expect=METHOD))

# -- introspection ----------------------------------------------------------------------------------
INTROSPECT = "/oauth/introspect"
add(
    Case("introspect-empty", "POST", INTROSPECT, data=b"", expect=OAUTH),
    Case("introspect-no-client", "POST", INTROSPECT, data=[("token", "garbage")], expect=OAUTH),
    Case("introspect-public-client", "POST", INTROSPECT, data=[("token", "garbage"), ("client_id", "$PID")], expect=OAUTH),
    Case("introspect-unknown-client", "POST", INTROSPECT, data=[("token", "x"), ("client_id", "nobody"), ("client_secret", "x")], expect=OAUTH),
    Case("introspect-client-id-nul", "POST", INTROSPECT, data=[("token", "x"), ("client_id", NUL), ("client_secret", NUL)], expect=OAUTH),
    Case("introspect-client-id-non-utf8", "POST", INTROSPECT, data="token=x&client_id=%ff&client_secret=%fe", expect=OAUTH),
    Case("introspect-client-id-huge", "POST", INTROSPECT, data=[("token", "x"), ("client_id", HUGE), ("client_secret", "x")], expect=OAUTH),
    Case("introspect-wrong-secret", "POST", INTROSPECT, data=[("token", "x"), ("client_id", "$CID"), ("client_secret", "wrong")], expect=OAUTH),
    Case("introspect-token-missing", "POST", INTROSPECT, data=[("client_id", "$CID"), ("client_secret", "$SECRET")], expect=OAUTH),
    Case("introspect-token-empty", "POST", INTROSPECT, data=[("token", ""), ("client_id", "$CID"), ("client_secret", "$SECRET")], expect=OAUTH),
    Case("introspect-token-garbage", "POST", INTROSPECT, data=[("token", "garbage"), ("client_id", "$CID"), ("client_secret", "$SECRET")], expect=OAUTH_OR_OK),
    Case("introspect-token-nul", "POST", INTROSPECT, data=[("token", NUL), ("client_id", "$CID"), ("client_secret", "$SECRET")], expect=OAUTH_OR_OK),
    Case("introspect-token-huge", "POST", INTROSPECT, data=[("token", HUGE), ("client_id", "$CID"), ("client_secret", "$SECRET")], expect=OAUTH_OR_OK),
    Case("introspect-token-non-utf8", "POST", INTROSPECT, data="token=%ff%fe&client_id=$CID&client_secret=$SECRET", expect=OAUTH_OR_OK),
    Case("introspect-token-lone-surrogate", "POST", INTROSPECT, data="token=%ed%a0%80&client_id=$CID&client_secret=$SECRET", expect=OAUTH_OR_OK),
    Case("introspect-dup-token", "POST", INTROSPECT, data="token=a&token=b&client_id=$CID&client_secret=$SECRET", expect=OAUTH_OR_OK),
    Case("introspect-json-body", "POST", INTROSPECT, data=json.dumps({"token": "x", "client_id": "$CID", "client_secret": "$SECRET"}), content_type="application/json", expect=OAUTH),
    Case("introspect-json-with-basic", "POST", INTROSPECT, data=json.dumps({"token": "x"}), content_type="application/json", headers=basic("$CID", "$SECRET"), expect=OAUTH),
    Case("introspect-text-plain", "POST", INTROSPECT, data=b"token=x", content_type="text/plain", headers=basic("$CID", "$SECRET"), expect=OAUTH),
    Case("introspect-multipart-no-boundary", "POST", INTROSPECT, data=b"--x\r\n", content_type="multipart/form-data", headers=basic("$CID", "$SECRET"), expect=OAUTH),
    Case("introspect-too-many-fields", "POST", INTROSPECT, data="&".join(f"f{i}=x" for i in range(1500)), headers=basic("$CID", "$SECRET"), expect=OAUTH),
    Case("introspect-basic-nul-token", "POST", INTROSPECT, data=[("token", NUL)], headers=basic("$CID", "$SECRET"), expect=OAUTH_OR_OK),
)
for name, value in GARBAGE_AUTH_HEADERS.items():
    add(Case(f"introspect-auth-{name}", "POST", INTROSPECT, data=[("token", "garbage")], headers={"HTTP_AUTHORIZATION": value}, expect=OAUTH))
for method in ("GET", "PUT", "DELETE"):
    add(Case(f"introspect-method-{method}", method, INTROSPECT, query=[("token", "x")], expect=METHOD))

# -- userinfo ---------------------------------------------------------------------------------------
USERINFO = "/oauth/userinfo"
for method in ("GET", "POST"):
    add(
        Case(f"userinfo-{method}-no-token", method, USERINFO, expect=OAUTH),
        Case(f"userinfo-{method}-token-in-query", method, USERINFO, query=[("access_token", "garbage")], expect=OAUTH),
        Case(f"userinfo-{method}-token-in-query-nul", method, USERINFO, query=[("access_token", NUL)], expect=OAUTH),
        Case(f"userinfo-{method}-query-non-utf8", method, USERINFO, query="access_token=%ff%fe", expect=OAUTH),
        Case(f"userinfo-{method}-bearer-nul", method, USERINFO, headers={"HTTP_AUTHORIZATION": "Bearer a\x00b"}, expect=OAUTH),
        Case(f"userinfo-{method}-bearer-latin1", method, USERINFO, headers={"HTTP_AUTHORIZATION": "Bearer \xff\xfe"}, expect=OAUTH),
        Case(f"userinfo-{method}-two-bearers", method, USERINFO, headers={"HTTP_AUTHORIZATION": "Bearer a, Bearer b"}, expect=OAUTH),
    )
    for name, value in GARBAGE_AUTH_HEADERS.items():
        add(Case(f"userinfo-{method}-auth-{name}", method, USERINFO, headers={"HTTP_AUTHORIZATION": value}, expect=OAUTH))
add(
    Case("userinfo-POST-token-in-body", "POST", USERINFO, data=[("access_token", "garbage")], expect=OAUTH),
    Case("userinfo-POST-token-in-body-nul", "POST", USERINFO, data=[("access_token", NUL)], expect=OAUTH),
    Case("userinfo-POST-json", "POST", USERINFO, data=b'{"access_token": "x"}', content_type="application/json", expect=OAUTH),
    Case("userinfo-POST-multipart-no-boundary", "POST", USERINFO, data=b"--x\r\n", content_type="multipart/form-data", expect=OAUTH),
)
for method in ("PUT", "DELETE"):
    add(Case(f"userinfo-method-{method}", method, USERINFO, headers={"HTTP_AUTHORIZATION": "Bearer x"}, expect=METHOD))

# -- authorization endpoint -------------------------------------------------------------------------
AUTHORIZE = "/oauth/authorize"
VALID = {
    "response_type": "code",
    "client_id": "$CID",
    "redirect_uri": REDIRECT_URI,
    "scope": "openid profile",
    "state": "st",
    "nonce": "nn",
}


def with_(**changes: str | None) -> list[tuple[str, str]]:
    params = dict(VALID)
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    return list(params.items())


def raw(**changes: str | None) -> str:
    """A raw query string from VALID; values given here are inserted verbatim (already encoded)."""
    params = {key: quote(value, safe="$") for key, value in VALID.items()}
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    return "&".join(f"{key}={value}" for key, value in params.items())


# Requests whose client or redirect URI cannot be trusted: an error page, never a redirect.
AUTHZ_UNTRUSTED: list[tuple[str, Any]] = [
    ("no-params", []),
    ("client-missing", with_(client_id=None)),
    ("client-unknown", with_(client_id="nobody")),
    ("client-empty", with_(client_id="")),
    ("client-nul", with_(client_id=NUL)),
    ("client-nul-suffix", with_(client_id="$CID\x00")),
    ("client-huge", with_(client_id=HUGE)),
    ("client-non-utf8", raw(client_id="%ff%fe")),
    ("client-overlong-utf8", raw(client_id="%c0%ae%c0%ae")),
    ("client-dup", raw() + "&client_id=$PID"),
    ("client-dup-same", raw() + "&client_id=$CID"),
    ("redirect-unregistered", with_(redirect_uri="https://evil.example.com/callback")),
    ("redirect-modified-path", with_(redirect_uri=REDIRECT_URI + "/x")),
    ("redirect-modified-query", with_(redirect_uri=REDIRECT_URI + "?x=1")),
    ("redirect-fragment", with_(redirect_uri=REDIRECT_URI + "#x")),
    ("redirect-userinfo", with_(redirect_uri="https://evil.com@rp.example.com/callback")),
    ("redirect-http", with_(redirect_uri="http://rp.example.com/callback")),
    ("redirect-port", with_(redirect_uri="https://rp.example.com:444/callback")),
    ("redirect-nul", with_(redirect_uri=NUL)),
    ("redirect-nul-suffix", with_(redirect_uri=REDIRECT_URI + NUL)),
    ("redirect-newline", with_(redirect_uri=REDIRECT_URI + "\r\nX-Injected: 1")),
    ("redirect-tab", with_(redirect_uri="https://rp.example.com/call\tback")),
    ("redirect-leading-space", with_(redirect_uri=" " + REDIRECT_URI)),
    ("redirect-huge", with_(redirect_uri=REDIRECT_URI + "?" + HUGE)),
    ("redirect-non-utf8", raw(redirect_uri="https%3A%2F%2Frp.example.com%2F%ff")),
    ("redirect-javascript", with_(redirect_uri="javascript:alert(1)")),
    ("redirect-relative", with_(redirect_uri="/callback")),
    ("redirect-dup", raw() + "&redirect_uri=https%3A%2F%2Fevil.example.com%2F"),
    ("redirect-dup-same", raw() + "&redirect_uri=" + quote(REDIRECT_URI, safe="")),
]
# Requests from a known client to its registered redirect URI, otherwise broken: an error page or
# an error sent to the registered redirect URI; anything else is fine as long as nothing breaks.
AUTHZ_TRUSTED: list[tuple[str, Any]] = [
    ("redirect-missing", with_(redirect_uri=None)),
    ("response-type-missing", with_(response_type=None)),
    ("response-type-token", with_(response_type="token")),
    ("response-type-id-token", with_(response_type="code id_token")),
    ("response-type-nul", with_(response_type=NUL)),
    ("response-type-dup", raw() + "&response_type=token"),
    ("response-mode-fragment", with_(response_mode="fragment")),
    ("scope-missing", with_(scope=None)),
    ("scope-unknown", with_(scope="openid admin")),
    ("scope-nul", with_(scope="openid\x00profile")),
    ("scope-huge", with_(scope="openid " + HUGE)),
    ("scope-non-utf8", raw(scope="openid%20%ff")),
    ("state-nul", with_(state=NUL)),
    ("state-huge", with_(state=HUGE)),
    ("state-non-utf8", raw(state="%ff%fe")),
    ("state-dup", raw() + "&state=other"),
    ("nonce-nul", with_(nonce="a\x00b")),
    ("nonce-huge", with_(nonce=HUGE)),
    ("nonce-non-utf8", raw(nonce="%ff")),
    ("pkce-plain", with_(code_challenge="x" * 43, code_challenge_method="plain")),
    ("pkce-method-garbage", with_(code_challenge="x" * 43, code_challenge_method="\x00")),
    ("pkce-method-only", with_(code_challenge_method="S256")),
    ("pkce-challenge-nul", with_(code_challenge="\x00" * 43, code_challenge_method="S256")),
    ("pkce-challenge-huge", with_(code_challenge=HUGE, code_challenge_method="S256")),
    ("pkce-challenge-short", with_(code_challenge="abc", code_challenge_method="S256")),
    ("prompt-garbage", with_(prompt="\x00sideways")),
    ("prompt-none-login", with_(prompt="none login")),
    ("prompt-none", with_(prompt="none")),
    ("max-age-text", with_(max_age="abc")),
    ("max-age-negative", with_(max_age="-1")),
    ("max-age-float", with_(max_age="1.5")),
    ("max-age-huge", with_(max_age="9" * 5000)),
    ("max-age-nul", with_(max_age=NUL)),
    ("login-hint-nul", with_(login_hint="alice\x00")),
    ("login-hint-huge", with_(login_hint=HUGE)),
    ("id-token-hint-garbage", with_(id_token_hint="garbage")),
    ("id-token-hint-nul", with_(id_token_hint=NUL)),
    ("id-token-hint-jws-garbage", with_(id_token_hint="eyJhbGciOiJSUzI1NiIsImtpZCI6WzFdfQ.e30.AAAA")),
    ("ui-locales-garbage", with_(ui_locales="\x00zz-ZZ")),
    ("claims-garbage", with_(claims="{not json")),
    ("request-object", with_(request="eyJhbGciOiJub25lIn0.e30.")),
    ("request-uri", with_(request_uri="https://evil.example.com/req")),
    ("resume-garbage", with_(resume="\x00garbage")),
    ("resource-garbage", with_(resource="\x00not a uri")),
    ("public-no-pkce", with_(client_id="$PID")),
]
for method in ("GET", "POST"):
    for name, params in AUTHZ_UNTRUSTED:
        for signed_in in (False, True):
            who = "signed-in" if signed_in else "anonymous"
            if method == "GET":
                add(Case(f"authorize-{method}-{who}-{name}", method, AUTHORIZE, query=params, expect=PAGE, signed_in=signed_in))
            else:
                add(Case(f"authorize-{method}-{who}-{name}", method, AUTHORIZE, data=params, expect=PAGE, signed_in=signed_in))
    for name, params in AUTHZ_TRUSTED:
        for signed_in in (False, True):
            who = "signed-in" if signed_in else "anonymous"
            if method == "GET":
                add(Case(f"authorize-{method}-{who}-{name}", method, AUTHORIZE, query=params, expect=AUTHZ, signed_in=signed_in))
            else:
                add(Case(f"authorize-{method}-{who}-{name}", method, AUTHORIZE, data=params, expect=AUTHZ, signed_in=signed_in))
add(
    Case("authorize-POST-json", "POST", AUTHORIZE, data=json.dumps(VALID), content_type="application/json", expect=PAGE),
    Case("authorize-POST-text", "POST", AUTHORIZE, data=b"client_id=x", content_type="text/plain", expect=PAGE),
    Case("authorize-POST-multipart-no-boundary", "POST", AUTHORIZE, data=b"--x\r\n", content_type="multipart/form-data", expect=PAGE),
    Case("authorize-POST-too-many-fields", "POST", AUTHORIZE, data="&".join(f"f{i}=x" for i in range(1500)), expect=PAGE),
    Case("authorize-GET-too-many-fields", "GET", AUTHORIZE, query="&".join(f"f{i}=x" for i in range(1500)), expect=PAGE),
    Case("authorize-GET-basic-garbage", "GET", AUTHORIZE, query=with_(), headers={"HTTP_AUTHORIZATION": "Basic !!!"}, expect=AUTHZ),
)
for method in ("PUT", "DELETE", "PATCH"):
    add(Case(f"authorize-method-{method}", method, AUTHORIZE, query=with_(), expect=METHOD))

# -- consent answer ---------------------------------------------------------------------------------
CONSENT = "/oauth/authorize/consent"
for signed_in in (False, True):
    who = "signed-in" if signed_in else "anonymous"
    add(
        Case(f"consent-{who}-empty", "POST", CONSENT, data=b"", expect=PAGE, signed_in=signed_in),
        Case(f"consent-{who}-key-garbage", "POST", CONSENT, data=[("key", "garbage"), ("decision", "allow")], expect=PAGE, signed_in=signed_in),
        Case(f"consent-{who}-key-nul", "POST", CONSENT, data=[("key", NUL), ("decision", NUL)], expect=PAGE, signed_in=signed_in),
        Case(f"consent-{who}-key-huge", "POST", CONSENT, data=[("key", HUGE), ("decision", "allow")], expect=PAGE, signed_in=signed_in),
        Case(f"consent-{who}-non-utf8", "POST", CONSENT, data="key=%ff%fe&decision=%ff", expect=PAGE, signed_in=signed_in),
        Case(f"consent-{who}-json", "POST", CONSENT, data=b'{"key": "x"}', content_type="application/json", expect=PAGE, signed_in=signed_in),
        Case(f"consent-{who}-get", "GET", CONSENT, query=[("key", "x")], expect=METHOD, signed_in=signed_in),
    )

# -- end session ------------------------------------------------------------------------------------
LOGOUT = "/oauth/logout"
JWS_GARBAGE = {
    "garbage": "garbage",
    "nul": NUL,
    "nul-dots": "\x00.\x00.\x00",
    "huge": HUGE,
    "just-dots": "..",
    "non-b64": "!!!.@@@.###",
    "header-array": base64.urlsafe_b64encode(b"[]").decode().rstrip("=") + ".e30.AAAA",
    "header-string": base64.urlsafe_b64encode(b'"x"').decode().rstrip("=") + ".e30.AAAA",
    "kid-list": base64.urlsafe_b64encode(b'{"alg":"RS256","kid":[1,2]}').decode().rstrip("=") + ".e30.AAAA",
    "kid-object": base64.urlsafe_b64encode(b'{"alg":"RS256","kid":{"a":1}}').decode().rstrip("=") + ".e30.AAAA",
    "alg-none": base64.urlsafe_b64encode(b'{"alg":"none"}').decode().rstrip("=") + "." + base64.urlsafe_b64encode(b'{"sub":"1","aud":"x"}').decode().rstrip("=") + ".",
    "payload-not-json": "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.AAAA",
    "json-serialization": json.dumps({"payload": "e30", "signatures": [{"protected": "eyJhbGciOiJSUzI1NiJ9", "signature": "AAAA"}]}),
    "json-garbage": '{"payload": 1, "signature": null}',
    "jwe-five-parts": "a.b.c.d.e",
    "unicode": "\u2603.\u2603.\u2603",
}
for method in ("GET", "POST"):
    for name, hint in JWS_GARBAGE.items():
        for signed_in in (False, True):
            who = "signed-in" if signed_in else "anonymous"
            params = [("id_token_hint", hint), ("post_logout_redirect_uri", BYE), ("state", "s")]
            if method == "GET":
                add(Case(f"logout-{method}-{who}-hint-{name}", method, LOGOUT, query=params, expect=PAGE, signed_in=signed_in))
            else:
                add(Case(f"logout-{method}-{who}-hint-{name}", method, LOGOUT, data=params, expect=PAGE, signed_in=signed_in))
    carrier = "query" if method == "GET" else "data"
    for signed_in in (False, True):
        who = "signed-in" if signed_in else "anonymous"
        for name, params, expect in [
            ("hint-non-utf8", "id_token_hint=%ff%fe.%ff.%ff&post_logout_redirect_uri=" + quote(BYE, safe=""), PAGE),
            ("client-nul", [("client_id", NUL), ("post_logout_redirect_uri", BYE)], PAGE),
            ("client-huge", [("client_id", HUGE), ("post_logout_redirect_uri", BYE)], PAGE),
            ("client-non-utf8", "client_id=%ff%fe&post_logout_redirect_uri=" + quote(BYE, safe=""), PAGE),
            ("client-unknown", [("client_id", "nobody")], PAGE),
            ("client-dup", "client_id=$CID&client_id=$PID&post_logout_redirect_uri=" + quote(BYE, safe=""), SAFE),
            ("uri-no-client", [("post_logout_redirect_uri", BYE)], PAGE),
            ("uri-unregistered", [("client_id", "$CID"), ("post_logout_redirect_uri", "https://evil.example.com/")], PAGE),
            ("uri-nul", [("client_id", "$CID"), ("post_logout_redirect_uri", BYE + NUL)], PAGE),
            ("uri-newline", [("client_id", "$CID"), ("post_logout_redirect_uri", BYE + "\n")], PAGE),
            ("uri-crlf-header", [("client_id", "$CID"), ("post_logout_redirect_uri", BYE + "\r\nSet-Cookie: x=1")], PAGE),
            ("uri-tab", [("client_id", "$CID"), ("post_logout_redirect_uri", "https://rp.example.com/b\tye")], PAGE),
            ("uri-huge", [("client_id", "$CID"), ("post_logout_redirect_uri", BYE + "?" + HUGE)], PAGE),
            ("uri-non-utf8", "client_id=$CID&post_logout_redirect_uri=https%3A%2F%2Frp.example.com%2F%ff", PAGE),
            ("uri-dup", "client_id=$CID&post_logout_redirect_uri=" + quote(BYE, safe="") + "&post_logout_redirect_uri=https%3A%2F%2Fevil.example.com%2F", PAGE),
            ("state-nul", [("client_id", "$CID"), ("post_logout_redirect_uri", BYE), ("state", NUL)], SAFE),
            ("state-newline", [("client_id", "$CID"), ("post_logout_redirect_uri", BYE), ("state", "a\r\nSet-Cookie: x=1")], SAFE),
            ("state-huge", [("client_id", "$CID"), ("post_logout_redirect_uri", BYE), ("state", HUGE)], SAFE),
            ("state-non-utf8", "client_id=$CID&post_logout_redirect_uri=" + quote(BYE, safe="") + "&state=%ff", SAFE),
            ("ui-locales-garbage", [("ui_locales", "\x00")], SAFE),
        ]:
            if carrier == "query":
                add(Case(f"logout-{method}-{who}-{name}", method, LOGOUT, query=params, expect=expect, signed_in=signed_in))
            else:
                add(Case(f"logout-{method}-{who}-{name}", method, LOGOUT, data=params, expect=expect, signed_in=signed_in))
for signed_in in (False, True):
    who = "signed-in" if signed_in else "anonymous"
    add(
        Case(f"logout-confirm-{who}-key-garbage", "POST", LOGOUT, data=[("key", "garbage"), ("confirm", "yes")], signed_in=signed_in),
        Case(f"logout-confirm-{who}-key-nul", "POST", LOGOUT, data=[("key", NUL), ("confirm", NUL)], signed_in=signed_in),
        Case(f"logout-confirm-{who}-key-huge", "POST", LOGOUT, data=[("key", HUGE), ("confirm", "yes")], signed_in=signed_in),
        Case(f"logout-confirm-{who}-non-utf8", "POST", LOGOUT, data="key=%ff&confirm=%fe", signed_in=signed_in),
        Case(f"logout-confirm-{who}-dup", "POST", LOGOUT, data="key=a&key=b&confirm=yes&confirm=no", signed_in=signed_in),
        Case(f"logout-{who}-json", "POST", LOGOUT, data=b'{"id_token_hint": "x"}', content_type="application/json", signed_in=signed_in),
        Case(f"logout-{who}-multipart-no-boundary", "POST", LOGOUT, data=b"--x\r\n", content_type="multipart/form-data", signed_in=signed_in),
        Case(f"logout-{who}-too-many-fields", "POST", LOGOUT, data="&".join(f"f{i}=x" for i in range(1500)), signed_in=signed_in),
        Case(f"logout-{who}-method-PUT", "PUT", LOGOUT, expect=METHOD, signed_in=signed_in),
    )

# -- sign-in pages ----------------------------------------------------------------------------------
for signed_in in (False, True):
    who = "signed-in" if signed_in else "anonymous"
    for name, path in [
        ("unknown", "/sign-in/unknown-uid/"),
        ("nul", "/sign-in/%00/"),
        ("nul-inside", "/sign-in/abc%00def/"),
        ("non-utf8", "/sign-in/%ff%fe/"),
        ("huge", "/sign-in/" + "u" * 5000 + "/"),
        ("dots", "/sign-in/..%2f..%2f/"),
        ("unicode", "/sign-in/%E2%98%83/"),
    ]:
        add(
            Case(f"sign-in-GET-{who}-{name}", "GET", path, signed_in=signed_in),
            Case(f"sign-in-POST-{who}-{name}", "POST", path, data=[("identifier", "alice"), ("password", "x"), ("authenticator", "password")], signed_in=signed_in),
            Case(f"sign-in-POST-{who}-{name}-garbage", "POST", path, data=[("identifier", NUL), ("password", NUL), ("authenticator", NUL)], signed_in=signed_in),
        )
    add(
        Case(f"sign-in-start-{who}-garbage", "GET", "/sign-in/", query=[("next", NUL), ("client_id", NUL), ("login_hint", HUGE)], signed_in=signed_in),
        Case(f"sign-in-start-{who}-non-utf8", "GET", "/sign-in/", query="next=%ff&client_id=%fe", signed_in=signed_in),
        Case(f"sign-in-start-{who}-post-garbage", "POST", "/sign-in/", data=[("identifier", NUL), ("password", HUGE)], signed_in=signed_in),
    )

# -- discovery and keys -----------------------------------------------------------------------------
for path in ("/.well-known/openid-configuration", "/.well-known/jwks.json"):
    add(
        Case(f"wellknown-{path}-garbage-query", "GET", path, query="x=%ff%00&y=" + "z" * 5000, expect=SAFE),
        Case(f"wellknown-{path}-auth-garbage", "GET", path, headers={"HTTP_AUTHORIZATION": "Basic !!!"}, expect=SAFE),
        Case(f"wellknown-{path}-POST", "POST", path, data=b"x", expect=METHOD),
        Case(f"wellknown-{path}-PUT", "PUT", path, expect=METHOD),
    )


# -- running one case -------------------------------------------------------------------------------
@pytest.fixture
def context(db, confidential_app, public_app, user) -> dict[str, str]:
    return {"$CID": confidential_app.client_id, "$PID": public_app.client_id, "$SECRET": confidential_app.client_secret}


def _fill(value: Any, context: dict[str, str]) -> Any:
    if isinstance(value, str):
        for placeholder in sorted(context, key=len, reverse=True):
            value = value.replace(placeholder, context[placeholder])
        return value
    if isinstance(value, bytes):
        return _fill(value.decode("latin-1"), context).encode("latin-1")
    if isinstance(value, list):
        return [(_fill(key, context), _fill(item, context)) for key, item in value]
    if isinstance(value, dict):
        return {key: _fill(item, context) for key, item in value.items()}
    return value


def _encode_query(query: Any) -> str:
    if query is None:
        return ""
    if isinstance(query, str):
        return query
    return urlencode(query)


def _encode_body(data: Any) -> bytes:
    if data is None:
        return b""
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    return urlencode(data).encode()


def send(client: Client, case: Case, context: dict[str, str]) -> Any:
    query = _encode_query(_fill(case.query, context))
    body = _encode_body(_fill(case.data, context))
    headers = _fill(case.headers, context)
    path = case.path + ("?" + query if query else "")
    kwargs: dict[str, Any] = dict(headers)
    if body or case.method not in ("GET", "HEAD", "DELETE"):
        kwargs["content_type"] = case.content_type
    return client.generic(case.method, path, body, **kwargs)


def _own_or_registered(location: str) -> bool:
    parts = urlsplit(location)
    if not parts.scheme and not parts.netloc:
        return location.startswith("/")  # our own pages (sign-in, consent, ...)
    if parts.netloc == "testserver":
        return True
    return location.startswith(REDIRECT_URI + "?") or location == BYE or location.startswith(BYE + "?")


def _oauth_error(response: Any) -> dict[str, Any]:
    assert response["Content-Type"].startswith("application/json"), (response.status_code, response["Content-Type"], response.content[:300])
    body = json.loads(response.content)
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], body
    return body


def check(case: Case, response: Any) -> None:
    status = response.status_code
    assert status < 500, (status, response.content[:500])
    location = response.get("Location")
    if location is not None:
        assert "\n" not in location and "\r" not in location, location
    if case.expect == OAUTH:
        assert 400 <= status < 500, (status, response.content[:300])
        _oauth_error(response)
    elif case.expect == OAUTH_OR_OK:
        if status >= 400:
            _oauth_error(response)
        else:
            assert status == 200, status
    elif case.expect == METHOD:
        assert status == 405, status
    elif case.expect == PAGE:
        assert 400 <= status < 500, (status, location, response.content[:300])
        assert location is None, location
    elif case.expect == AUTHZ:
        if location is not None:
            assert _own_or_registered(location), location
        else:
            assert 200 <= status < 500, status
    else:  # SAFE
        if location is not None:
            assert _own_or_registered(location), location


@pytest.fixture
def signed_in_client(context, confidential_app) -> Client:
    browser = Client(raise_request_exception=False)
    issue_tokens(Flow(browser), confidential_app, scope="openid")
    return browser


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_no_server_error(case: Case, context, request):
    client = request.getfixturevalue("signed_in_client") if case.signed_in else Client(raise_request_exception=False)
    response = send(client, case, context)
    check(case, response)


def test_table_covers_every_endpoint():
    paths = {case.path for case in CASES}
    for path in (TOKEN, REVOKE, INTROSPECT, USERINFO, AUTHORIZE, CONSENT, LOGOUT,
                 "/.well-known/openid-configuration", "/.well-known/jwks.json"):
        assert path in paths
    assert any(path.startswith("/sign-in/") for path in paths)


# -- a few properties that need real tokens ---------------------------------------------------------
def test_real_tokens_with_garbage_around_them(flow, confidential_app, public_app, user):
    body, _ = issue_tokens(flow, confidential_app)
    client = Client(raise_request_exception=False)
    access, refresh = body["access_token"], body["refresh_token"]
    requests = [
        ("GET", USERINFO, {"HTTP_AUTHORIZATION": f"Bearer {access}\x00"}),
        ("GET", USERINFO, {"HTTP_AUTHORIZATION": f"Bearer {access} extra"}),
        ("GET", USERINFO, {"HTTP_AUTHORIZATION": f"bearer\t{access}"}),
        ("GET", USERINFO, {"HTTP_AUTHORIZATION": f"Basic {access}"}),
    ]
    for method, path, headers in requests:
        response = client.generic(method, path, **headers)
        assert response.status_code < 500, (headers, response.status_code)
    for data in (
        {"grant_type": "refresh_token", "refresh_token": refresh + "\x00", "client_id": confidential_app.client_id, "client_secret": confidential_app.client_secret},
        {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": public_app.client_id},
        {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": confidential_app.client_id, "client_secret": confidential_app.client_secret, "scope": "openid admin"},
        {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": confidential_app.client_id, "client_secret": confidential_app.client_secret, "scope": "\x00"},
    ):
        response = client.post(TOKEN, data)
        assert 400 <= response.status_code < 500, (data, response.status_code, response.content[:300])
        _oauth_error(response)
    for data in (
        {"token": access + "\x00", "client_id": public_app.client_id},
        {"token": access, "client_id": public_app.client_id},  # another client's token: not revoked, no error leak
    ):
        response = client.post(REVOKE, data)
        assert response.status_code < 500
    assert client.get(USERINFO, HTTP_AUTHORIZATION=f"Bearer {access}").status_code == 200


def test_code_redeemed_with_garbage_companions(flow, confidential_app, user):
    from tests.helpers import pkce_pair

    verifier, challenge = pkce_pair()
    code, params = flow.code_for(confidential_app, authorize_params(confidential_app, challenge))
    client = Client(raise_request_exception=False)
    base = {"grant_type": "authorization_code", "code": code, "client_id": confidential_app.client_id,
            "client_secret": confidential_app.client_secret}
    for extra in (
        {"redirect_uri": params["redirect_uri"] + "\x00", "code_verifier": verifier},
        {"redirect_uri": params["redirect_uri"], "code_verifier": verifier + "\x00"},
        {"redirect_uri": params["redirect_uri"], "code_verifier": "\xff" * 60},
        {"redirect_uri": params["redirect_uri"]},
    ):
        response = client.post(TOKEN, {**base, **extra})
        assert 400 <= response.status_code < 500, (extra, response.status_code, response.content[:300])
        _oauth_error(response)


# -- form bodies Django cannot read, with CSRF enforced as a browser meets it -----------------------
# Django ignores a charset it does not know and reads UTF-8, and finds no parts in a multipart body
# sent in UTF-16: not unreadable (an empty or garbled form), but never a 500 either.
ODD_FORMS: dict[str, tuple[str, bytes]] = {
    "multipart-utf-16": ("multipart/form-data; boundary=b; charset=utf-16", MULTIPART_UTF16),
    "multipart-ascii-declared-utf-16": ("multipart/form-data; boundary=b; charset=utf-16", (
        "--b\r\nContent-Disposition: form-data; name=\"identifier\"\r\n\r\n\xff\r\n--b--\r\n").encode("latin-1")),
    "unknown-charset": (f"{URLENCODED}; charset=no-such-charset", FORM.encode("utf-16")),
    "unknown-charset-utf-8": (f"{URLENCODED}; charset=no-such-charset", FORM.encode()),
}
HTML_POST_ENDPOINTS = {
    "sign-in": None,  # an interaction's page, made by an authorization request
    "sign-in-start": "/sign-in/",
    "authorize": AUTHORIZE,
    "consent": CONSENT,
    "logout": LOGOUT,
    "connected-apps": "/account/connected-apps/",
    "admin-login": "/admin/login/",
}
OAUTH_POST_ENDPOINTS = {"token": TOKEN, "revoke": REVOKE, "introspect": INTROSPECT, "userinfo": USERINFO}


def csrf_enforcing_browser(signed_in_as: Client | None) -> Client:
    browser = Client(enforce_csrf_checks=True, raise_request_exception=False)
    if signed_in_as is not None:
        browser.cookies = signed_in_as.cookies
    return browser


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "signed-in"])
@pytest.mark.parametrize("endpoint", [*HTML_POST_ENDPOINTS, *OAUTH_POST_ENDPOINTS])
def test_an_unreadable_form_is_400_never_500(request, context, confidential_app, endpoint, signed_in):
    """With a CSRF cookie Django's CSRF check read the body, raised, and its 400 handler read it again
    under requires_csrf_token and raised once more: a 500 on every page."""
    browser = csrf_enforcing_browser(request.getfixturevalue("signed_in_client") if signed_in else None)
    path = HTML_POST_ENDPOINTS.get(endpoint) or OAUTH_POST_ENDPOINTS.get(endpoint)
    if endpoint == "sign-in":
        path = Client().get(AUTHORIZE + "?" + urlencode(authorize_params(confidential_app)))["Location"]
    for cookie in (True, False):
        if cookie:
            browser.cookies["csrftoken"] = CSRF_SECRET
        else:
            browser.cookies.pop("csrftoken", None)
        for name, (content_type, body) in {**UNREADABLE_FORMS, **ODD_FORMS}.items():
            response = browser.generic("POST", path, body, content_type=content_type)
            where = (endpoint, name, "cookie" if cookie else "no cookie", response.status_code)
            assert response.status_code < 500, where
            if name in UNREADABLE_FORMS:
                assert response.status_code == 400, where
            if endpoint in OAUTH_POST_ENDPOINTS:
                assert _oauth_error(response)["error"], where
            elif response.status_code == 400:
                assert response["Content-Type"].startswith("text/html"), where
                assert response["X-Frame-Options"] == "DENY", where


def test_the_standalone_error_pages_never_read_the_body(context, settings):
    """config.urls's own handlers hold even without the middleware: Django's default 400 handler read
    request.POST again and turned the 400 into a 500."""
    settings.MIDDLEWARE = [name for name in settings.MIDDLEWARE if name != "identity.middleware.ReadableBodyMiddleware"]
    browser = csrf_enforcing_browser(None)
    browser.cookies["csrftoken"] = CSRF_SECRET
    content_type, body = UNREADABLE_FORMS["utf-16"]
    response = browser.generic("POST", CONSENT, body, content_type=content_type)
    assert response.status_code == 400, response.content[:300]
    assert b"Bad request" in response.content


def test_the_500_page_does_not_read_the_body_either():
    from django.test import RequestFactory

    from config import errors, urls

    assert urls.handler500 == "config.errors.server_error"
    content_type, body = UNREADABLE_FORMS["utf-16"]
    broken = RequestFactory().generic("POST", CONSENT, body, content_type=content_type)
    response = errors.server_error(broken)
    assert response.status_code == 500
    assert b"Server error" in response.content


@pytest.mark.parametrize("order", ["missing", "after-csrf"])
def test_a_project_without_the_middleware_before_csrf_is_warned(settings, order):
    from identity.checks import check_readable_body_middleware
    from identity.middleware import CSRF, PATH

    middleware = [name for name in settings.MIDDLEWARE if name != PATH]
    if order == "after-csrf":
        middleware.insert(middleware.index(CSRF) + 1, PATH)
    settings.MIDDLEWARE = middleware
    assert [warning.id for warning in check_readable_body_middleware(None)] == ["identity.W003"]


def test_the_apps_put_the_middleware_before_csrf_themselves():
    from types import SimpleNamespace

    from identity.middleware import CSRF, PATH, install

    host = SimpleNamespace(MIDDLEWARE=("django.contrib.sessions.middleware.SessionMiddleware", CSRF))
    install(host)
    assert host.MIDDLEWARE == ["django.contrib.sessions.middleware.SessionMiddleware", PATH, CSRF]
    install(host)  # once only
    assert host.MIDDLEWARE.count(PATH) == 1
