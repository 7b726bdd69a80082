"""The demo client: a real relying party that signs in through the authorization code flow with
PKCE, over HTTP, against this server's own endpoints, and shows what it received.

It is a separate party on purpose: its state lives in its own signed cookie, it learns the endpoints
from discovery and checks the ID token with the published keys, as any client would.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from jwcrypto import jwk, jwt

COOKIE = "portcullis_demo"
CALLBACK_PATH = "/demo/callback"


def demo_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.PORTCULLIS_DEMO:
            raise Http404("The demo is switched off.")
        return view(request, *args, **kwargs)

    return wrapper


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "config/home.html", {"demo": settings.PORTCULLIS_DEMO})


def _base(request: HttpRequest) -> str:
    return f"{request.scheme}://{request.get_host()}"


def _get_json(url: str, headers: dict[str, str] | None = None, data: dict[str, str] | None = None) -> tuple[int, Any]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:  # noqa: S310  our own server
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _discovery(request: HttpRequest) -> dict[str, Any]:
    return _get_json(_base(request) + "/.well-known/openid-configuration")[1]


@demo_only
@never_cache
def index(request: HttpRequest) -> HttpResponse:
    data = None
    raw = request.COOKIES.get(COOKIE + "_result")
    if raw:
        try:
            data = signing.loads(raw, salt="demo-result", max_age=3600)
        except signing.BadSignature:
            data = None
    context: dict[str, Any] = {"result": data, "client_id": settings.PORTCULLIS_DEMO_CLIENT_ID}
    if isinstance(data, dict):
        context["claims_json"] = pretty_json(data.get("claims"))
        context["userinfo_json"] = pretty_json(data.get("userinfo"))
    return render(request, "config/demo.html", context)


def pretty_json(value: Any) -> str:
    """Claims as a developer reads them in the specifications: indented JSON, keys sorted."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


@demo_only
@never_cache
def login(request: HttpRequest) -> HttpResponse:
    config = _discovery(request)
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    params = {
        "response_type": "code",
        "client_id": settings.PORTCULLIS_DEMO_CLIENT_ID,
        "redirect_uri": _base(request) + CALLBACK_PATH,
        "scope": "openid profile email phone",
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    if request.GET.get("prompt") in ("login", "consent", "none"):
        params["prompt"] = request.GET["prompt"]
    response = HttpResponseRedirect(config["authorization_endpoint"] + "?" + urllib.parse.urlencode(params))
    cookie = signing.dumps({"state": state, "nonce": nonce, "verifier": verifier}, salt="demo-flow")
    response.set_cookie(COOKIE, cookie, max_age=900, httponly=True, samesite="Lax", path="/demo/")
    return response


@demo_only
@never_cache
def callback(request: HttpRequest) -> HttpResponse:
    try:
        flow = signing.loads(request.COOKIES.get(COOKIE, ""), salt="demo-flow", max_age=900)
    except signing.BadSignature:
        return _fail(request, "The demo's sign-in state is missing: start again.")
    config = _discovery(request)
    if request.GET.get("state") != flow["state"]:
        return _fail(request, "state does not match")
    if request.GET.get("iss") != config["issuer"]:
        return _fail(request, "iss does not match the issuer (RFC 9207)")
    if "error" in request.GET:
        return _fail(request, f"{request.GET['error']}: {request.GET.get('error_description', '')}")
    status, tokens = _get_json(config["token_endpoint"], data={
        "grant_type": "authorization_code",
        "code": request.GET.get("code", ""),
        "redirect_uri": _base(request) + CALLBACK_PATH,
        "client_id": settings.PORTCULLIS_DEMO_CLIENT_ID,
        "code_verifier": flow["verifier"],
    })
    if status != 200:
        return _fail(request, f"token endpoint answered {status}: {tokens}")
    jwks = jwk.JWKSet.from_json(json.dumps(_get_json(config["jwks_uri"])[1]))
    try:
        id_token = jwt.JWT(jwt=tokens["id_token"], key=jwks, algs=["RS256"],
                           check_claims={"iss": config["issuer"], "aud": settings.PORTCULLIS_DEMO_CLIENT_ID,
                                         "exp": None, "nonce": flow["nonce"]})
        claims = json.loads(id_token.claims)
    except Exception as error:  # noqa: BLE001  any verification failure is shown, not raised
        return _fail(request, f"the ID token did not verify: {error}")
    _status, userinfo = _get_json(config["userinfo_endpoint"], headers={"Authorization": f"Bearer {tokens['access_token']}"})
    result = {"claims": claims, "userinfo": userinfo, "id_token": tokens["id_token"], "at": int(time.time())}
    response = HttpResponseRedirect("/demo/")
    response.set_cookie(COOKIE + "_result", signing.dumps(result, salt="demo-result"), max_age=3600,
                        httponly=True, samesite="Lax", path="/demo/")
    response.delete_cookie(COOKIE, path="/demo/")
    return response


@demo_only
@never_cache
def logout(request: HttpRequest) -> HttpResponse:
    config = _discovery(request)
    raw = request.COOKIES.get(COOKIE + "_result")
    params = {"client_id": settings.PORTCULLIS_DEMO_CLIENT_ID, "post_logout_redirect_uri": _base(request) + "/demo/"}
    if raw:
        try:
            params["id_token_hint"] = signing.loads(raw, salt="demo-result")["id_token"]
        except signing.BadSignature:
            pass
    response = HttpResponseRedirect(config["end_session_endpoint"] + "?" + urllib.parse.urlencode(params))
    response.delete_cookie(COOKIE + "_result", path="/demo/")
    return response


def _fail(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "config/demo.html", {"error": message, "client_id": settings.PORTCULLIS_DEMO_CLIENT_ID}, status=400)
