"""The demo client: a real relying party that signs in through the authorization code flow with
PKCE, over HTTP, against this server's own endpoints, and shows what it received.

It is a separate party on purpose: its state lives in its own signed cookie, it learns the endpoints
from discovery and checks the ID token with the published keys, as any client would.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import http.client
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
from django.http.request import split_domain_port
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from jwcrypto import jwk, jwt

from identity.app_settings import app_settings

COOKIE = "portcullis_demo"
CALLBACK_PATH = "/demo/callback"
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


def demo_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.PORTCULLIS_DEMO:
            raise Http404("The demo is switched off.")
        return view(request, *args, **kwargs)

    return wrapper


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "config/home.html", {"demo": settings.PORTCULLIS_DEMO})


class DemoError(Exception):
    """Something the demo cannot go on without: shown on its page, never a 500."""


def demo_errors(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except DemoError as error:
            return _fail(request, str(error))

    return wrapper


def _base(request: HttpRequest) -> str:
    """The site the demo talks to and lives on, never taken from what the browser claims.

    The configured issuer's origin; without ISSUER (a DEBUG server) the request's own origin only
    when it names this very server: a loopback host on the port the server listens on. Anything
    else would make the server fetch any port of any allowed host (a server-side request forgery).
    """
    if app_settings.ISSUER:
        issuer = urllib.parse.urlsplit(app_settings.ISSUER)
        return f"{issuer.scheme}://{issuer.netloc}"
    hostname, port = split_domain_port(request.get_host())
    own_port = str(request.META.get("SERVER_PORT", ""))
    if hostname in LOOPBACK and (port or ("443" if request.is_secure() else "80")) == own_port:
        return f"{request.scheme}://{request.get_host()}"
    raise DemoError("The demo needs ISSUER, or to be opened on a loopback address of this server "
                    "(http://127.0.0.1:<port>/demo/).")


def _get_json(url: str, headers: dict[str, str] | None = None, data: dict[str, str] | None = None) -> tuple[int, Any]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        try:
            with urllib.request.urlopen(req, timeout=10) as response:  # noqa: S310  our own server
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")
    except (OSError, ValueError, http.client.HTTPException) as error:  # refused, timed out, not JSON
        raise DemoError(f"{url} did not answer JSON: {error}") from None


def _discovery(request: HttpRequest) -> dict[str, Any]:
    status, config = _get_json(_base(request) + "/.well-known/openid-configuration")
    needed = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint", "end_session_endpoint")
    if status != 200 or not isinstance(config, dict) or not all(isinstance(config.get(key), str) for key in needed):
        raise DemoError(f"The discovery document could not be read (HTTP {status}).")
    return config


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
    return render(request, "config/demo.html", {"result": data, "client_id": settings.PORTCULLIS_DEMO_CLIENT_ID})


@demo_only
@never_cache
@demo_errors
def login(request: HttpRequest) -> HttpResponse:
    base = _base(request)
    if request.get_host().lower() != urllib.parse.urlsplit(base).netloc.lower():
        return HttpResponseRedirect(base + "/demo/login")  # the flow's cookie must come back to one host
    config = _discovery(request)
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    params = {
        "response_type": "code",
        "client_id": settings.PORTCULLIS_DEMO_CLIENT_ID,
        "redirect_uri": base + CALLBACK_PATH,
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
@demo_errors
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
    if status != 200 or not isinstance(tokens, dict) or not isinstance(tokens.get("access_token"), str):
        return _fail(request, f"token endpoint answered {status}: {tokens}")
    _status, published = _get_json(config["jwks_uri"])
    try:
        jwks = jwk.JWKSet.from_json(json.dumps(published))
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
@demo_errors
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
