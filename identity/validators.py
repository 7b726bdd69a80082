"""Portcullis's OAuth2Validator: django-oauth-toolkit extended at its seam.

What it changes, and why (see SECURITY.md, "Known gaps"):
- one read per token request: the grant with its application, user, profile and authorization
  record is loaded once (a prepared lookup) and reused by every oauthlib callback;
- the code is consumed by one conditional UPDATE after the token pair is written, so one of any
  number of parallel redemptions wins; a second redemption revokes the whole token family;
- a refresh reads its token once (with its client, user and access token) and rotates in one
  statement whose conditional UPDATE spends the old token; a replay, or a parallel refresh's loser,
  revokes the family;
- ID tokens are signed with the database keys and carry ``auth_time`` / ``amr`` / ``acr`` / ``sid``
  from the sign-in itself (not ``last_login``), and are not stored;
- only ``response_type=code``, PKCE ``S256`` only, required for public clients, no downgrade.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.db import router, transaction
from django.db.models import signals
from django.utils import timezone
from django.utils.translation import gettext
from oauth2_provider.bcp import bcp_compliant
from oauth2_provider.models import (
    AbstractApplication,
    get_access_token_model,
    get_application_model,
    get_grant_model,
    get_refresh_token_model,
)
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.settings import _PhonyHttpRequest, oauth2_settings
from oauthlib.oauth2.rfc6749 import errors

from identity import client_auth, keys, metrics, tokens
from identity.app_settings import app_settings
from identity.applications import load_application
from identity.authentication import Authentication
from identity.claims import user_claims
from identity.models import AuthorizationRecord
from identity.prepared import Claim, PreparedLookup, PreparedQuery, insert, insert_together

Application = get_application_model()
Grant = get_grant_model()
AccessToken = get_access_token_model()
RefreshToken = get_refresh_token_model()

_preloaded: contextvars.ContextVar[Any] = contextvars.ContextVar("portcullis_application", default=None)


@contextmanager
def preloaded_application(application: Any) -> Iterator[None]:
    """Let the validator reuse an application the view has already loaded."""
    token = _preloaded.set(application)
    try:
        yield
    finally:
        _preloaded.reset(token)


_grants = PreparedLookup(
    lambda code: Grant.objects.select_related(
        "application__portcullis_settings", "user__portcullis_profile", "portcullis_record"
    ).filter(code=code)
)
# Rows may share a checksum (DOT's uniqueness is (token_checksum, revoked)): all of them, chosen in Python.
_refresh_tokens = PreparedQuery(
    lambda checksum: RefreshToken.objects.select_related(
        "application__portcullis_settings", "user__portcullis_profile", "access_token"
    ).filter(token_checksum=checksum)
)
_access_tokens = PreparedLookup(
    lambda checksum: AccessToken.objects.select_related("application", "user__portcullis_profile").filter(
        token_checksum=checksum
    )
)


_preloaded_token: contextvars.ContextVar[tuple[str, Any] | None] = contextvars.ContextVar(
    "portcullis_access_token", default=None
)


@contextmanager
def preloaded_access_token(token: str, access_token: Any | None) -> Iterator[None]:
    """Let the validator reuse the row (or the absence of one) a view has already looked up."""
    reset = _preloaded_token.set((token, access_token))
    try:
        yield
    finally:
        _preloaded_token.reset(reset)


def load_access_token(token: str) -> Any | None:
    """The access token row with its application and user, in one query; None when unknown."""
    if not isinstance(token, str) or not token or "\x00" in token:
        return None
    preloaded = _preloaded_token.get()
    if preloaded is not None and preloaded[0] == token:
        return preloaded[1]
    checksum = hashlib.sha256(token.encode("utf-8")).hexdigest()
    return _access_tokens.get(checksum, router.db_for_read(AccessToken))


_token_request: contextvars.ContextVar[Any] = contextvars.ContextVar("portcullis_token_request", default=None)


@contextmanager
def token_request(request: Any) -> Iterator[None]:
    """Let the validator hand the token endpoint's Django request to ``PORTCULLIS_TOKEN_CHECK``."""
    reset = _token_request.set(request)
    try:
        yield
    finally:
        _token_request.reset(reset)


class _Replayed(Exception):
    """A code or refresh token was used again: its family must be revoked (``family`` None: only
    refused, the settings spare it)."""

    def __init__(self, family: Any, access_token: Any = None) -> None:
        self.family = family
        self.access_token = access_token  # the loser's own pair, written before it lost


class PortcullisValidator(OAuth2Validator):
    # -- clients -----------------------------------------------------------------------------
    def _load_application(self, client_id: str, request: Any) -> Any | None:
        client = request.client
        if isinstance(client, Application) and client.client_id == client_id:
            return client
        preloaded = _preloaded.get()
        grant = getattr(request, "_portcullis_grant", None)
        if preloaded is not None and preloaded.client_id == client_id:
            client = preloaded
        elif grant is not None and grant.application.client_id == client_id:
            client = grant.application  # came with the code, in the same query
        elif (getattr(request, "grant_type", None) == "refresh_token"
              and (refresh := self._refresh_token(request.refresh_token, request)) is not None
              and refresh.application.client_id == client_id):
            client = refresh.application  # came with the refresh token, in the same query
        else:
            client = load_application(client_id)
        if client is None or not client.is_usable(request):
            request.client = None
            return None
        request.client = client
        return client

    # One client authentication method per request (RFC 6749 2.3): identity.client_auth. DOT would
    # fall back from a failed Basic header to the body, accept both at once, and let oauthlib answer
    # a client_id mismatch with server_error.
    def client_authentication_required(self, request, *args, **kwargs) -> bool:
        if client_auth.from_oauthlib(request).method != client_auth.NONE:
            return True
        return super().client_authentication_required(request, *args, **kwargs)

    def authenticate_client(self, request, *args, **kwargs) -> bool:
        """True when the request's one method names a client and proves its secret; raises
        ``client_auth.InvalidClient`` (401) or ``client_auth.TwoMethods`` (400) otherwise, which
        oauthlib's endpoints turn into the answer (so callers outside them catch ``OAuth2Error``)."""
        credentials = client_auth.from_oauthlib(request)
        client = self._load_application(credentials.client_id, request) if credentials.client_id else None
        if client is None or not credentials.secret or not self._check_secret(credentials.secret, client.client_secret):
            request.client = None
            raise client_auth.InvalidClient()
        return True

    def authenticate_client_id(self, client_id, request, *args, **kwargs) -> bool:
        if not super().authenticate_client_id(client_id, request, *args, **kwargs):
            raise client_auth.InvalidClient()  # unknown, or confidential without its secret
        return True

    def validate_response_type(self, client_id, response_type, client, request, *args, **kwargs) -> bool:
        # Only the authorization code flow: no implicit, no hybrid (RFC 9700).
        if response_type != "code":
            raise errors.UnsupportedResponseTypeError(request=request)
        return client.allows_grant_type(AbstractApplication.GRANT_AUTHORIZATION_CODE)

    def validate_redirect_uri(self, client_id, redirect_uri, request, *args, **kwargs) -> bool:
        return redirect_uri_registered(request.client, redirect_uri)

    def is_pkce_required(self, client_id, request) -> bool:
        challenge = getattr(request, "code_challenge", None)
        if challenge is not None and getattr(request, "code_challenge_method", None) != "S256":
            raise errors.InvalidRequestError(
                description="Only the S256 code_challenge_method is supported.", request=request
            )
        client = request.client or self._load_application(client_id, request)
        return client is None or client.client_type == AbstractApplication.CLIENT_PUBLIC

    # -- silent authentication: decided by identity.views.AuthorizationView before oauthlib runs
    def validate_silent_login(self, request) -> bool:
        return True

    def validate_silent_authorization(self, request) -> bool:
        return True

    def validate_user_match(self, id_token_hint, scopes, claims, request) -> bool:
        return True

    # -- authorization codes -----------------------------------------------------------------
    def _create_authorization_code(self, request, code, expires=None):
        # DOT's grant, check and fields as DOT makes them, written with its record by
        # identity.prepared.insert_together: both rows or neither (one statement on PostgreSQL).
        if request.code_challenge_method == "plain" and bcp_compliant(
                "COMPLIANT_BCP_RFC9700_PKCE_METHOD", 'The PKCE "plain" code_challenge_method'):
            raise errors.InvalidRequestError(
                description='Unsupported "plain" code_challenge_method; use "S256".', request=request)
        grant = Grant(
            application=request.client,
            user=request.user,
            code=code["code"],
            expires=expires or timezone.now() + timedelta(seconds=oauth2_settings.AUTHORIZATION_CODE_EXPIRE_SECONDS),
            redirect_uri=request.redirect_uri,
            scope=" ".join(request.scopes),
            code_challenge=request.code_challenge or "",
            code_challenge_method=request.code_challenge_method or "",
            nonce=request.nonce or "",
            claims=json.dumps(request.claims or {}),
            resource=getattr(request, "resource", []),
        )
        auth: Authentication = request.portcullis_auth
        record = AuthorizationRecord(
            grant=grant,
            application=request.client,
            user=request.user,
            auth_time=datetime.fromtimestamp(auth.auth_time, tz=UTC),
            amr=auth.amr,
            acr=auth.acr,
            sid=auth.sid,
        )
        insert_together([grant, record], links={1: {"grant_id": 0}}, using=router.db_for_write(Grant))
        return grant

    def _grant(self, code: str, request) -> Any | None:
        cached = getattr(request, "_portcullis_grant", None)
        if cached is not None and cached.code == code:
            return cached
        if not isinstance(code, str) or "\x00" in code:
            return None
        grant = _grants.get(code, router.db_for_read(Grant)) if len(code) <= 255 else None
        request._portcullis_grant = grant
        return grant

    def get_authorization_code_scopes(self, client_id, code, redirect_uri, request):
        grant = self._grant(code, request)
        return grant.scope.split() if grant else []

    def get_authorization_code_nonce(self, client_id, code, redirect_uri, request):
        grant = self._grant(code, request)
        return (grant.nonce or None) if grant else None

    def validate_code(self, client_id, code, client, request, *args, **kwargs) -> bool:
        grant = self._grant(code, request)
        if grant is None or grant.application_id != client.pk:
            return False
        record = getattr(grant, "portcullis_record", None)
        if record is None:
            return False
        if record.redeemed_at is not None:
            tokens.revoke_family(record.family)
            return False
        if grant.is_expired() or not grant.user.is_active:
            return False
        if getattr(request, "code_verifier", None) and not grant.code_challenge:
            return False  # PKCE downgrade: a verifier for a code that was issued without a challenge
        refusal = tokens.issuance_refusal(grant.user, client, _token_request.get(), "authorization_code")
        if refusal:
            raise errors.InvalidGrantError(description=refusal, request=request)
        request.scopes = grant.scope.split()
        request.user = grant.user
        request.nonce = grant.nonce or None
        request.claims = json.loads(grant.claims) if grant.claims else None
        request._portcullis_record = record
        return True

    def confirm_redirect_uri(self, client_id, code, redirect_uri, client, request=None, *args, **kwargs) -> bool:
        # The code is bound to the exact redirect_uri of its authorization request, which the
        # token request must repeat (oauthlib would otherwise substitute the client's default).
        if request is None or getattr(request, "using_default_redirect_uri", False) or not redirect_uri:
            raise errors.InvalidGrantError(description="redirect_uri must repeat the authorization request's.", request=request)
        grant = self._grant(code, request)
        if grant is None or grant.application_id != client.pk or grant.redirect_uri != redirect_uri:
            raise errors.InvalidGrantError(description="redirect_uri does not match the authorization request.", request=request)
        return True

    def get_code_challenge(self, code, request):
        grant = self._grant(code, request)
        return (grant.code_challenge or None) if grant else None

    def get_code_challenge_method(self, code, request):
        grant = self._grant(code, request)
        return (grant.code_challenge_method or None) if grant else None

    def invalidate_authorization_code(self, client_id, code, request, *args, **kwargs) -> None:
        # The code was consumed by save_bearer_token's conditional UPDATE; the grant row stays
        # until it expires so that a second redemption can still be recognised.
        return None

    # -- tokens --------------------------------------------------------------------------------
    def save_bearer_token(self, token, request, *args, **kwargs):
        try:
            saved = None
            if request.grant_type == "authorization_code":
                self._save_code_tokens(token, request)
            elif self._rotates(token, request):
                self._save_rotated_tokens(token, request)
            else:
                with transaction.atomic(using=router.db_for_write(AccessToken)):
                    saved = self._save_bearer_token(token, request, *args, **kwargs)
        except _Replayed as replay:
            # Outside any other transaction, so it sees (and revokes) what the winner wrote.
            if replay.family is not None:
                tokens.revoke_family(replay.family, access_token=replay.access_token)
            raise errors.InvalidGrantError(request=request) from None
        metrics.token_issued(request.grant_type)  # every token the endpoint issues is stored here
        return saved

    def _save_code_tokens(self, token, request) -> None:
        """Write the token pair only if the code's conditional UPDATE consumes it, all or nothing
        (``identity.prepared.insert_together``: on PostgreSQL one statement, which needs no
        transaction of its own; elsewhere one transaction).

        Of any number of parallel redemptions exactly one consumes the code: the others' UPDATE
        waits for the winner's row lock, then matches nothing, and a loser writes no pair. It
        revokes the whole family, the winner's pair included (a code used twice has leaked;
        ``save_bearer_token`` does it after its own statement, so it sees what the winner
        committed). The values leave the server only after the commit.
        """
        if "scope" not in token:
            raise errors.InvalidScopeError(request=request)
        record: AuthorizationRecord = request._portcullis_record
        request.resource = request._portcullis_grant.resource or []
        if not self._write_token_pair(token, request, record.family,
                                      claim=(AuthorizationRecord, record.pk, "redeemed_at", timezone.now())):
            raise _Replayed(record.family)

    def _rotates(self, token: dict[str, Any], request: Any) -> bool:
        """Whether this refresh rotates its token (every refresh, by default) the way
        ``_save_rotated_tokens`` writes it; DOT's own path otherwise."""
        previous = getattr(request, "refresh_token_instance", None)
        return (request.grant_type == "refresh_token" and bool(token.get("refresh_token"))
                and self.rotate_refresh_token(request) and isinstance(previous, RefreshToken)
                and previous.revoked is None and previous.access_token_id is not None
                # DOT's revoke() saves the old token, with its signals; the claim's UPDATE sends none
                and not signals.pre_save.has_listeners(RefreshToken)
                and not signals.post_save.has_listeners(RefreshToken))

    @staticmethod
    def _lost_race(family: Any) -> _Replayed:
        """A refresh that lost to a parallel one of the same token: a replay, whose family ends,
        unless the settings spare a token superseded just now (DOT's reuse protection off, or a
        grace window: as a retry that comes after the winner is answered)."""
        spared = (not oauth2_settings.REFRESH_TOKEN_REUSE_PROTECTION
                  or oauth2_settings.REFRESH_TOKEN_GRACE_PERIOD_SECONDS > 0)
        return _Replayed(None if spared else family)

    def _save_rotated_tokens(self, token: dict[str, Any], request: Any) -> None:
        """A refresh's rotation, as DOT's (the refresh token revoked and detached from its access
        token, which is deleted; a new pair in the same family, the access token naming the refresh
        token it came from), written by ``identity.prepared.insert_together``: on PostgreSQL one
        statement, elsewhere one transaction.

        The old refresh token's revocation is the claim: of parallel refreshes of one token exactly
        one matches (the others' ``UPDATE`` waits for the winner's row lock, then matches nothing)
        and writes the new pair; a loser writes nothing and revokes the family, the winner's pair
        included, as a replay does (``save_bearer_token``, after its statement), unless the
        settings spare it (``_lost_race``)."""
        if "scope" not in token:
            raise errors.InvalidScopeError(request=request)
        previous = request.refresh_token_instance
        self._check_and_set_request_resource(request)
        now = timezone.now()
        if not self._write_token_pair(token, request, previous.token_family, source=previous,
                                      claim=(RefreshToken, previous.pk, "revoked", now),
                                      claim_also={"access_token": None, "updated": now},
                                      delete=(AccessToken, previous.access_token_id)):
            raise self._lost_race(previous.token_family)
        request.refresh_token_instance = None  # revoked, as DOT leaves it

    def _write_token_pair(self, token: dict[str, Any], request: Any, family: Any, claim: Claim | None = None, *,
                          source: Any = None, claim_also: dict[str, Any] | None = None,
                          delete: tuple[Any, Any] | None = None) -> bool:
        """The access token (made by the refresh token ``source``, if any) and, when the response
        has one, its refresh token, in ``family``; with ``claim`` (the code's consumption, a
        refresh token's revocation), only if it matches (``claim_also`` and ``delete`` go with it:
        ``insert_together``). Whether they were written."""
        expires = timezone.now() + timedelta(seconds=token.get("expires_in", oauth2_settings.ACCESS_TOKEN_EXPIRE_SECONDS))
        access_token = self._access_token(expires, request, token, source)
        if not token.get("refresh_token"):
            return insert_together([access_token], claim=claim, claim_also=claim_also, delete=delete)
        refresh = RefreshToken(
            user=request.user,
            application=request.client,
            access_token=access_token,
            token_family=family,
            resource=getattr(request, "resource", None) or [],
        )
        self._set_token_value(refresh, token["refresh_token"])
        return insert_together([access_token, refresh], links={1: {"access_token_id": 0}}, claim=claim,
                               claim_also=claim_also, delete=delete)

    def save_user_token(self, token: dict[str, Any], request: Any) -> None:
        """Store a token pair the engine issued for a signed-in user (``identity.tokens.issue_user_token``):
        a family of its own, started by ``request._portcullis_record``, refreshed like any other."""
        self._write_token_pair(token, request, request._portcullis_record.family)
        metrics.token_issued(request.grant_type)

    def _save_bearer_token(self, token, request, *args, **kwargs):
        previous = getattr(request, "refresh_token_instance", None)
        if request.grant_type == "refresh_token" and isinstance(previous, RefreshToken):
            locked = RefreshToken.objects.select_for_update().get(pk=previous.pk)
            if locked.revoked is not None:  # a parallel refresh already rotated it
                raise self._lost_race(locked.token_family)
        return super()._save_bearer_token(token, request, *args, **kwargs)

    def _create_access_token(self, expires, request, token, source_refresh_token=None):
        # Like DOT's, without loading a stored ID token: Portcullis does not store ID tokens.
        access_token = self._access_token(expires, request, token, source_refresh_token)
        insert(access_token)
        return access_token

    def _access_token(self, expires, request, token, source_refresh_token=None) -> Any:
        access_token = AccessToken(
            user=request.user,
            scope=token["scope"],
            expires=expires,
            application=request.client,
            source_refresh_token=source_refresh_token,
            resource=getattr(request, "resource", []),
        )
        self._set_token_value(access_token, token["access_token"])
        return access_token

    def _refresh_token(self, value: Any, request: Any) -> Any | None:
        """The refresh token ``value`` names, with its application, user (and profile) and access
        token, in one query, once a request (client authentication reads its application first):
        the unrevoked row of its checksum, otherwise the last revoked one, as DOT chooses; None
        when unknown."""
        cached = getattr(request, "_portcullis_refresh", None)
        if cached is not None and cached[0] == value:
            return cached[1]
        found = None
        if isinstance(value, str) and value and "\x00" not in value:
            rows = _refresh_tokens.instances(tokens.token_checksum(value), db=router.db_for_read(RefreshToken))
            if rows:
                found = min(rows, key=lambda row: (row.revoked is not None, -row.revoked.timestamp() if row.revoked else 0))
        request._portcullis_refresh = (value, found)
        return found

    def validate_refresh_token(self, refresh_token, client, request, *args, **kwargs) -> bool:
        """DOT's checks (a replayed token revokes its family; the token must be its client's), on the
        row ``_refresh_token`` loaded, then the liveness rule introspection applies too (DOT's idle
        lifetime included) and the project's ``PORTCULLIS_TOKEN_CHECK``."""
        rt = self._refresh_token(refresh_token, request)
        if rt is None:
            return False
        if rt.revoked is not None:
            # DOT's grace window shields only a token superseded by its rotation, within the window;
            # anything else revoked is a replay. Either way a revoked token refreshes nothing.
            grace = timedelta(seconds=oauth2_settings.REFRESH_TOKEN_GRACE_PERIOD_SECONDS)
            if rt.revoked <= timezone.now() - grace or not AccessToken.objects.filter(source_refresh_token=rt).exists():
                if oauth2_settings.REFRESH_TOKEN_REUSE_PROTECTION and rt.token_family:
                    tokens.revoke_family(rt.token_family)
            return False
        if client is None or rt.application_id != client.pk:
            return False
        request.user = rt.user
        request.refresh_token = refresh_token
        request.refresh_token_instance = rt  # for get_original_scopes and save_bearer_token, as DOT's
        record = tokens.family_record(rt)
        if not tokens.refresh_token_alive(rt, record):
            return False
        refusal = tokens.issuance_refusal(rt.user, client, _token_request.get(), "refresh_token")
        if refusal:
            # Refused for good: the family ends (its access tokens too), so nothing issued before the
            # rule changed stays usable; the user signs in again once the rules let them.
            tokens.revoke_family(rt.token_family)
            raise errors.InvalidGrantError(description=refusal, request=request)
        request._portcullis_record = record
        return True

    def _load_access_token(self, token):
        return load_access_token(token)

    def validate_bearer_token(self, token, scopes, request) -> bool:
        valid = super().validate_bearer_token(token, scopes, request)
        if valid and not tokens.access_token_alive(request.access_token):  # the rule introspection applies
            self._set_oauth2_error_on_request(request, None, scopes)
            return False
        return valid

    # -- ID tokens and claims ----------------------------------------------------------------------
    def get_oidc_issuer_endpoint(self, request) -> str:
        return app_settings.ISSUER or issuer_from_headers(request.headers)

    def finalize_id_token(self, id_token, token, token_handler, request) -> str:
        record: AuthorizationRecord = request._portcullis_record
        now = int(time.time())
        claims = user_claims(request.user, request.scopes)
        claims.update(id_token)
        claims.update(
            {
                "iss": self.get_oidc_issuer_endpoint(request),
                "aud": request.client.client_id,
                "azp": request.client.client_id,
                "iat": now,
                "exp": now + oauth2_settings.ID_TOKEN_EXPIRE_SECONDS,
                "auth_time": int(record.auth_time.timestamp()),
                "amr": list(record.amr),
                "sid": record.sid,
            }
        )
        if record.acr:
            claims["acr"] = record.acr
        if request.grant_type == "refresh_token":
            claims.pop("nonce", None)
        elif request.nonce:
            claims["nonce"] = request.nonce
        return keys.sign(claims)

    def get_userinfo_claims(self, request) -> dict[str, Any]:
        return user_claims(request.user, request.scopes)

    def get_discovery_claims(self, request):
        from identity.claims import SUPPORTED_CLAIMS

        return SUPPORTED_CLAIMS


LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")

# Two URIs pasted on one line ("https://a/cb,https://b/cb", or "https://a/cb," before a space).
_JOINED = re.compile(r",\s*[A-Za-z][A-Za-z0-9+.-]*://|,$")
_ORIGIN_HOST = re.compile(r"[a-z0-9.-]{1,253}|[0-9a-f:.]{2,45}")  # a DNS name or IP (IPv6 without brackets)


def validate_redirect_uri(uri: str) -> str | None:
    """Why a redirect URI (or post-logout redirect URI) can never be used; None when it can.

    The rule the authorization endpoint applies to every requested URI, so that the admin refuses
    to register what would never match: an absolute URI with an allowed scheme, plain http only to
    a loopback host (RFC 9700 2.1, RFC 8252), no fragment (RFC 6749 3.1.2), no credentials, and no
    wildcard (matching is exact).
    """
    if not isinstance(uri, str) or not uri or any(char.isspace() or ord(char) < 32 for char in uri):
        return gettext("Enter one absolute URI per line.")
    if _JOINED.search(uri):
        return gettext("Put one URI per line: this looks like several URIs joined by commas.")
    if "*" in uri:
        return gettext("Wildcards are not supported: register each URI exactly as the application sends it.")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return gettext("This is not a valid URI.")
    if not parts.scheme or (parts.scheme in ("http", "https") and not parts.hostname):
        return gettext("Enter an absolute URI with its scheme, like https://app.example.com/callback.")
    if parts.scheme not in oauth2_settings.ALLOWED_REDIRECT_URI_SCHEMES:
        return gettext("The scheme “%(scheme)s” is not allowed here; use https.") % {"scheme": parts.scheme}
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        return gettext("Plain http is allowed only for 127.0.0.1, [::1] and localhost; use https.")
    if "#" in uri:
        return gettext("A redirect URI must not contain a fragment (#…).")
    if "@" in parts.netloc:
        return gettext("A redirect URI must not contain a user name or password.")
    return None


def redirect_uri_registered(application: Any, uri: str) -> bool:
    """Simple string comparison with a registered URI (OIDC Core 3.1.2.1, RFC 9700); only a
    loopback IP's port may differ (RFC 8252 7.3). DOT's matcher must agree too."""
    try:
        return _redirect_uri_registered(application, uri)
    except ValueError:  # an unparsable port, say
        return False


def _redirect_uri_registered(application: Any, uri: str) -> bool:
    if not isinstance(uri, str) or not application.redirect_uri_allowed(uri):
        return False
    if validate_redirect_uri(uri) is not None:
        return False  # e.g. plain http to another machine (RFC 9700 2.1, RFC 8252 native apps)
    requested = urlsplit(uri)
    registered = application.redirect_uris.split()
    if uri in registered:
        return True
    for candidate in registered:
        allowed = urlsplit(candidate)
        if allowed.scheme == "http" and allowed.hostname in ("127.0.0.1", "::1"):
            host = allowed.netloc.rsplit(":", 1)[0] if allowed.port else allowed.netloc
            requested_host = requested.netloc.rsplit(":", 1)[0] if requested.port else requested.netloc
            if (requested.scheme, requested_host, requested.path, requested.query) == (
                allowed.scheme, host, allowed.path, allowed.query
            ):
                return True
    return False


def issuer_from_headers(headers: Any) -> str:
    """The site root of the Django request DOT turned into this oauthlib request."""
    django_request = _PhonyHttpRequest()
    django_request.META = dict(headers)
    if headers.get("X_DJANGO_OAUTH_TOOLKIT_SECURE"):
        django_request._scheme = "https"
    return app_settings.issuer(django_request)
