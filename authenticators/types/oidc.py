"""The ``oidc`` type: sign-in through an upstream OpenID Connect provider (docs/oidc.md).

The browser goes to the provider's authorization endpoint (found by discovery at ``issuer`` +
``/.well-known/openid-configuration``) with ``state``, ``nonce`` and a PKCE S256 challenge; the
callback's code is exchanged at the token endpoint and the ID token verified against the
provider's JWKS (signature, ``iss``, ``aud``, ``exp``, ``nonce``, ``at_hash``). Authlib and joserfc
do the protocol; every outbound request goes through :mod:`authenticators.types.outbound` (the
issuer rule: no server-side request forgery). The ``github`` preset speaks OAuth 2.0 and GitHub's
user API instead (no ID token; the user's numeric id is the ``sub``).

Users (:meth:`OidcAuth.resolve_user`): the identity linked to the upstream ``sub`` first; else an
existing account with the same e-mail is linked only when ``link_by_email`` is on and both sides say
the address is verified, and is otherwise refused (``account_exists``); else a new account when
``sign_up`` is on. An e-mail the upstream does not say is verified is never stored as a sign-in
identifier.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from django import forms
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from joserfc import jwt
from joserfc.errors import JoseError

from authenticators.base import AuthError, RedirectAuth
from authenticators.types import outbound
from authenticators.types.discovery import (
    TENANT_ID,
    cache_key,
    discovery_url,
    issuer_matches,
    metadata,
    signing_keys,
)
from authenticators.types.outbound import UpstreamUnavailable, UrlRefused
from authenticators.types.presets import (
    DEFAULT_CLAIMS,
    DEFAULT_SCOPES,
    ENDPOINT_OPTIONS,
    PRESETS,
    apply_preset,
    preset_of,
    protocol_of,
)
from identity.identifiers import EMAIL, AmbiguousIdentifier, find_user

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
DOMAIN = re.compile(r"(?=.{1,253}$)(?:(?!-)[a-z0-9-]{1,63}(?<!-)\.)+[a-z]{2,63}")
TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,99}")
LEEWAY = 60


def defaults() -> dict[str, Any]:
    """The options a new ``oidc`` authenticator starts with (SPEC §4)."""
    return {"preset": "", "issuer": "", "tenant": "common", "client_id": "", "client_secret": "",
            "scopes": list(DEFAULT_SCOPES), "claims": dict(DEFAULT_CLAIMS), "sign_up": True,
            "link_by_email": False, "domains": [], **dict.fromkeys(ENDPOINT_OPTIONS, "")}


# -- the settings form -------------------------------------------------------------------------------
class ListField(forms.Field):
    """A list of strings: a JSON list, or text separated by spaces, commas or new lines."""

    def to_python(self, value: Any) -> list[str]:
        if value in (None, "", []):
            return []
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("["):
                try:
                    value = json.loads(value)
                except ValueError:
                    raise ValidationError(_("Enter a list of values."), code="invalid") from None
            else:
                value = re.split(r"[\s,]+", value)
        if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
            raise ValidationError(_("Enter a list of values."), code="invalid")
        return [item.strip() for item in value if item.strip()]

    def prepare_value(self, value: Any) -> Any:
        return " ".join(value) if isinstance(value, list) else value


class ClaimsField(forms.JSONField):
    """A JSON object; stored options come as a dict rather than text (the form then still renders)."""

    def bound_data(self, data: Any, initial: Any) -> Any:
        return data if isinstance(data, (dict, list)) else super().bound_data(data, initial)


class OidcSettingsForm(forms.Form):
    preset = forms.ChoiceField(label=_("Preset"), required=False, initial="",
                               choices=[("", _("None (any OpenID Connect provider)"))]
                               + [(name, preset.title) for name, preset in PRESETS.items()],
                               help_text=_("Fills in what it knows of the provider; leave those fields blank."))
    issuer = forms.CharField(label=_("Issuer URL"), required=False, max_length=500, initial="",
                             help_text=_("Discovery is read from the issuer + /.well-known/openid-configuration."))
    tenant = forms.CharField(label=_("Tenant (Microsoft)"), required=False, max_length=100, initial="common")
    client_id = forms.CharField(label=_("Client ID"), max_length=255)
    client_secret = forms.CharField(label=_("Client secret"), required=False, max_length=2000, initial="",
                                    widget=forms.PasswordInput(render_value=False))
    scopes = ListField(label=_("Scopes"), required=False, initial=lambda: list(DEFAULT_SCOPES))
    claims = ClaimsField(label=_("Claim mapping"), required=False, initial=lambda: dict(DEFAULT_CLAIMS),
                             help_text=_('Our claim → the upstream claim, e.g. {"email": "email", "name": "name"}.'))
    sign_up = forms.BooleanField(label=_("Create an account on first sign-in"), required=False, initial=True)
    link_by_email = forms.BooleanField(
        label=_("Link to an existing account with the same verified e-mail"), required=False, initial=False)
    domains = ListField(label=_("E-mail domains routed here (enterprise SSO)"), required=False, initial=list)
    authorization_endpoint = forms.CharField(label=_("Authorization endpoint"), required=False, max_length=500,
                                             initial="")
    token_endpoint = forms.CharField(label=_("Token endpoint"), required=False, max_length=500, initial="")
    userinfo_endpoint = forms.CharField(label=_("User endpoint"), required=False, max_length=500, initial="")
    emails_endpoint = forms.CharField(label=_("E-mail addresses endpoint (GitHub)"), required=False,
                                      max_length=500, initial="")

    def clean_claims(self) -> dict[str, str]:
        value = self.cleaned_data.get("claims")
        if value in (None, ""):
            return dict(DEFAULT_CLAIMS)
        if not isinstance(value, dict) or not all(
                isinstance(key, str) and key.strip() and isinstance(item, str) and item.strip()
                for key, item in value.items()):
            raise ValidationError(_("Enter a JSON object of claim names to upstream claim names."), code="invalid")
        return {key.strip(): item.strip() for key, item in value.items()}

    def clean_domains(self) -> list[str]:
        domains: list[str] = []
        for value in self.cleaned_data.get("domains") or []:
            domain = value.strip().lower().lstrip("@").rstrip(".")
            if not DOMAIN.fullmatch(domain):
                raise ValidationError(_("“%(value)s” is not a domain name."), code="invalid", params={"value": value})
            if domain not in domains:
                domains.append(domain)
        return domains

    def clean_tenant(self) -> str:
        tenant = (self.cleaned_data.get("tenant") or "common").strip()
        if not TENANT.fullmatch(tenant):
            raise ValidationError(_("Enter a tenant ID or domain."), code="invalid")
        return tenant

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = apply_preset(self.cleaned_data)
        self.cleaned_data.update(data)
        protocol = protocol_of(data)
        if protocol == "oidc":
            if not data.get("issuer"):
                self.add_error("issuer", _("Enter the issuer URL (or choose a preset)."))
            if "openid" not in (data.get("scopes") or []):
                self.add_error("scopes", _("OpenID Connect needs the scope “openid”."))
        else:
            for name in ENDPOINT_OPTIONS:
                if not data.get(name):
                    self.add_error(name if name in self.fields else None, _("This endpoint is required."))
        for name in ("issuer", *ENDPOINT_OPTIONS):
            if data.get(name):
                try:
                    outbound.check_url(data[name], resolve=False)
                except UrlRefused as refused:
                    self.add_error(name, refused.message)
        return self.cleaned_data


def _header(token: str) -> dict[str, Any]:
    try:
        part = token.split(".")[0]
        header = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (ValueError, IndexError):
        raise AuthError("invalid_id_token", reason="malformed") from None
    if not isinstance(header, dict):
        raise AuthError("invalid_id_token", reason="malformed")
    return header


# -- the type ---------------------------------------------------------------------------------------
class OidcAuth(RedirectAuth):
    """Sign-in through an upstream OpenID Connect provider (or GitHub)."""

    @property
    def config(self) -> dict[str, Any]:
        """The options as used: defaults, then the stored options, then the preset's blanks."""
        return apply_preset({**defaults(), **self.options})

    # -- leg one ------------------------------------------------------------------------------
    def authorize_url(self, *, redirect_uri: str, state: str, nonce: str, code_verifier: str,
                      login_hint: str = "") -> str:
        config = self.config
        oidc = protocol_of(config) == "oidc"
        try:
            endpoint = metadata(config["issuer"])["authorization_endpoint"] if oidc \
                else config["authorization_endpoint"]
        except (UpstreamUnavailable, UrlRefused) as error:
            raise AuthError("upstream_unavailable", reason=_reason(error)) from None
        extra: dict[str, Any] = {"code_challenge": create_s256_code_challenge(code_verifier),
                                 "code_challenge_method": "S256", "nonce": nonce if oidc else None,
                                 "login_hint": login_hint or None}
        return str(prepare_grant_uri(endpoint, config["client_id"], "code", redirect_uri=redirect_uri,
                                     scope=config["scopes"], state=state, **extra))

    # -- leg two ------------------------------------------------------------------------------
    def complete(self, params: dict[str, Any], pending: dict[str, Any]) -> Any:
        self._spend(pending)
        if params.get("error"):
            raise AuthError("upstream_error", reason="callback:" + str(params.get("error"))[:60])
        code = params.get("code")
        if not isinstance(code, str) or not code or len(code) > 2048:
            raise AuthError("upstream_error", reason="no_code")
        try:
            if protocol_of(self.config) == "github":
                claims = self._github_claims(code, pending)
            else:
                claims = self._oidc_claims(code, pending, params)
        except (UpstreamUnavailable, UrlRefused) as error:
            raise AuthError("upstream_unavailable", reason=_reason(error)) from None
        return self.resolve_user(claims)

    def _spend(self, pending: dict[str, Any]) -> None:
        """A pending state completes once (a replayed callback is refused even if the caller kept it)."""
        key = cache_key("state", str(pending.get("state", "")))
        if not cache.add(key, 1, self.pending_ttl + LEEWAY):
            raise AuthError("invalid_state", reason="replayed")

    def _exchange(self, token_endpoint: str, code: str, pending: dict[str, Any],
                  auth_methods: list[str] | None = None) -> dict[str, Any]:
        """The token response of the code (Authlib prepares the request and the client's auth)."""
        config = self.config
        body = prepare_token_request("authorization_code", code=code, redirect_uri=pending.get("redirect_uri"),
                                     code_verifier=pending.get("code_verifier"))
        secret = config.get("client_secret") or ""
        methods = auth_methods if isinstance(auth_methods, list) and auth_methods else ["client_secret_basic"]
        method = "none" if not secret else (
            "client_secret_basic" if "client_secret_basic" in methods else "client_secret_post")
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        _uri, headers, body = ClientAuth(config["client_id"], secret, method).prepare(
            "POST", token_endpoint, headers, body)
        response = outbound.request("POST", token_endpoint, data=body.encode(), headers=headers)
        if response.status >= 500:
            raise UpstreamUnavailable("token_status", response.status)
        answer = response.json()
        if not isinstance(answer, dict):
            raise UpstreamUnavailable("bad_token_response", response.status)
        if response.status != 200 or "error" in answer:
            raise AuthError("upstream_error", reason="token:" + str(answer.get("error"))[:60])
        if not isinstance(answer.get("access_token"), str):
            raise UpstreamUnavailable("bad_token_response", response.status)
        return answer

    def _oidc_claims(self, code: str, pending: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        nonce = pending.get("nonce")
        if not isinstance(nonce, str) or not nonce:
            raise AuthError("invalid_state", reason="no_nonce")  # the ID token must be bound to this sign-in
        document = metadata(self.config["issuer"])
        self._check_response_issuer(params, document)
        token = self._exchange(document["token_endpoint"], code, pending,
                               document.get("token_endpoint_auth_methods_supported"))
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise AuthError("invalid_id_token", reason="missing")
        claims = self.verify_id_token(id_token, document, nonce=nonce, access_token=token["access_token"])
        wanted = set(self.config["claims"].values())
        if not wanted <= set(claims) and isinstance(document.get("userinfo_endpoint"), str):
            info = outbound.get_json(document["userinfo_endpoint"],
                                     headers={"Authorization": f"Bearer {token['access_token']}"})
            if not isinstance(info, dict) or info.get("sub") != claims["sub"]:
                raise UpstreamUnavailable("bad_userinfo")
            claims = {**info, **claims}
        return claims

    @staticmethod
    def _check_response_issuer(params: dict[str, Any], document: dict[str, Any]) -> None:
        """RFC 9207: the callback's ``iss`` names the provider we sent the user to (mix-up attacks)."""
        iss = params.get("iss")
        if iss is None:
            if document.get("authorization_response_iss_parameter_supported") is True:
                raise AuthError("upstream_error", reason="iss_missing")
            return
        if not isinstance(iss, str) or not issuer_matches(document["issuer"], iss):
            raise AuthError("upstream_error", reason="iss_mismatch")

    def verify_id_token(self, id_token: str, document: dict[str, Any], *, nonce: str,
                        access_token: str | None) -> dict[str, Any]:
        """The ID token's claims once its signature (a key of the JWKS, refetched once for an unknown
        ``kid``), ``iss``, ``aud``, ``azp``, ``exp``, ``iat``, ``nonce`` and ``at_hash`` check out."""
        kid = _header(id_token).get("kid")
        keys = signing_keys(document["jwks_uri"])
        if kid is not None and kid not in {key.kid for key in keys.keys}:
            keys = signing_keys(document["jwks_uri"], refresh=True)
        client_id = self.config["client_id"]
        try:
            token = jwt.decode(id_token, keys, algorithms=ALGORITHMS)
            expected = self._expected_issuer(document["issuer"], token.claims)
            claims = CodeIDToken(token.claims, token.header,
                                 options={"iss": {"essential": True, "value": expected},
                                          "aud": {"essential": True, "values": [client_id]},
                                          "exp": {"essential": True}},
                                 params={"nonce": nonce, "client_id": client_id, "access_token": access_token})
            claims.validate(leeway=LEEWAY)
        except JoseError as error:
            raise AuthError("invalid_id_token", reason=f"id_token:{type(error).__name__}") from None
        if not isinstance(claims.get("sub"), str) or not claims["sub"] or len(claims["sub"]) > 255:
            raise AuthError("invalid_id_token", reason="sub")
        return dict(claims)

    @staticmethod
    def _expected_issuer(published: str, claims: dict[str, Any]) -> str:
        if TENANT_ID not in published:
            return published
        tid = claims.get("tid")
        if not isinstance(tid, str) or not re.fullmatch(r"[A-Za-z0-9-]{1,64}", tid):
            raise AuthError("invalid_id_token", reason="tid")
        return published.replace(TENANT_ID, tid)

    def _github_claims(self, code: str, pending: dict[str, Any]) -> dict[str, Any]:
        """GitHub: the user (numeric ``id`` as ``sub``) and its primary verified e-mail address."""
        config = self.config
        token = self._exchange(config["token_endpoint"], code, pending, ["client_secret_post"])
        headers = {"Authorization": f"Bearer {token['access_token']}", "Accept": "application/vnd.github+json"}
        user = outbound.get_json(config["userinfo_endpoint"], headers=headers)
        if not isinstance(user, dict) or not isinstance(user.get("id"), int) or isinstance(user.get("id"), bool):
            raise UpstreamUnavailable("bad_user")
        emails = outbound.get_json(config["emails_endpoint"], headers=headers)
        email, verified = pick_github_email(emails if isinstance(emails, list) else [])
        return {**user, "sub": str(user["id"]), "email": email or None, "email_verified": verified}

    # -- users ----------------------------------------------------------------------------------
    def mapped_claims(self, claims: dict[str, Any]) -> dict[str, Any]:
        """Our claim → its upstream value, for each mapping the upstream answered (strings and numbers)."""
        mapped: dict[str, Any] = {}
        for ours, theirs in self.config["claims"].items():
            value = claims.get(theirs)
            if isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value).strip():
                mapped[ours] = str(value).strip()[:500]
        return mapped

    def email_verified(self, claims: dict[str, Any]) -> bool:
        """Whether the upstream says its e-mail is verified (``email_verified``; for Entra ID also
        ``xms_edov``); a string ``"true"`` counts (some providers send strings)."""
        preset = preset_of(self.config)
        names = preset.verified_claims if preset else ("email_verified",)
        return any(claims.get(name) is True or str(claims.get(name)).lower() == "true" for name in names)

    def resolve_user(self, claims: dict[str, Any]) -> Any:
        """The account for the upstream identity (rules in the module's docstring)."""
        sub = str(claims["sub"])
        mapped = self.mapped_claims(claims)
        email = _valid_email(mapped.get("email"))
        verified = bool(email) and self.email_verified(claims)
        meta = {**mapped, "email_verified": verified} if email else mapped
        user = self.authenticator.find_user(sub)
        if user is not None:
            self.authenticator.user_links.filter(uuid=sub).update(meta=meta)
            return user
        existing = self._account_with(email) if email else None
        if existing is not None:
            # A parallel first sign-in of this sub may have just made that account: its link and the
            # account are committed together, so the link is visible once the account is.
            return self.authenticator.find_user(sub) or self._link(existing, sub, meta, verified)
        if not self.config.get("sign_up"):
            raise AuthError("sign_up_disabled")
        return self._new_user(sub, mapped, meta, email if verified else "")

    @staticmethod
    def _account_with(email: str) -> Any | None:
        try:
            return find_user(email, [EMAIL])
        except AmbiguousIdentifier:
            raise AuthError("account_exists", reason="ambiguous_email") from None

    def _link(self, user: Any, sub: str, meta: dict[str, Any], verified: bool) -> Any:
        """Link an existing account: only with ``link_by_email``, an e-mail the upstream verified and
        an account whose own e-mail is verified (else whoever registered the address first, without
        proving it, would receive the upstream user's sign-ins)."""
        from authenticators.models import UserAuthenticator
        from identity.models import Profile

        local_verified = Profile.objects.filter(user=user, email_verified=True).exists()
        if not (self.config.get("link_by_email") and verified and local_verified):
            raise AuthError("account_exists", reason="link_refused")
        try:
            with transaction.atomic():
                UserAuthenticator.objects.create(authenticator=self.authenticator, user=user, uuid=sub, meta=meta)
        except IntegrityError:  # a parallel sign-in linked it first
            linked = self.authenticator.find_user(sub)
            if linked is None:
                raise
            return linked
        return user

    def _new_user(self, sub: str, mapped: dict[str, Any], meta: dict[str, Any], email: str) -> Any:
        from django.contrib.auth import get_user_model

        from identity.models import Profile

        values = user_values(mapped, email)
        username_field = get_user_model().USERNAME_FIELD
        def create(values: dict[str, Any]) -> Any:
            with transaction.atomic():  # the account is born with its verified e-mail, or not at all
                user = self.authenticator.new_user(sub, values, meta)
                if email:
                    Profile.objects.filter(user=user).update(email_verified=True)
            return user

        try:
            try:
                return create(values)
            except ValidationError as error:
                if username_field not in values or username_field not in getattr(error, "error_dict", {}):
                    raise
                values.pop(username_field)  # the upstream's username is taken here: a generated one
                return create(values)
        except (ValidationError, IntegrityError) as error:
            linked = self.authenticator.find_user(sub)  # a parallel first sign-in of the same sub won
            if linked is not None:
                return linked
            if isinstance(error, IntegrityError):
                raise
            raise AuthError("account_exists", reason="identifier_taken") from None

    # -- the admin's check --------------------------------------------------------------------------
    def test_connection(self) -> list[tuple[bool, str]]:
        """Discovery reachable, its issuer the configured one, JWKS with usable keys (GitHub: the
        endpoints pass the issuer rule)."""
        config = self.config
        if protocol_of(config) != "oidc":
            return [_url_check(config[name]) for name in ENDPOINT_OPTIONS]
        issuer = config["issuer"]
        try:
            document = outbound.get_json(discovery_url(issuer))
        except (UpstreamUnavailable, UrlRefused) as error:
            return [(False, gettext("Discovery at %(url)s failed: %(reason)s")
                     % {"url": discovery_url(issuer), "reason": _reason(error)})]
        results = [(True, gettext("Discovery document read from %(url)s") % {"url": discovery_url(issuer)})]
        published = document.get("issuer") if isinstance(document, dict) else None
        if not isinstance(published, str) or not issuer_matches(published, issuer):
            return [*results, (False, gettext("The document's issuer %(published)s is not %(issuer)s")
                               % {"published": published, "issuer": issuer})]
        results.append((True, gettext("The issuer matches: %(issuer)s") % {"issuer": published}))
        try:
            count = len(signing_keys(str(document.get("jwks_uri") or ""), refresh=True).keys)
        except (UpstreamUnavailable, UrlRefused) as error:
            return [*results, (False, gettext("The signing keys could not be read: %(reason)s")
                               % {"reason": _reason(error)})]
        return [*results, (True, gettext("Signing keys published: %(count)d") % {"count": count})]


# -- helpers ------------------------------------------------------------------------------------------
def _reason(error: Exception) -> str:
    if isinstance(error, UrlRefused):
        return f"refused: {error.message}"
    return str(getattr(error, "reason", "") or type(error).__name__)


def _url_check(url: str) -> tuple[bool, str]:
    try:
        outbound.check_url(url)
    except UrlRefused as refused:
        return False, f"{url}: {refused.message}"
    return True, url


def _valid_email(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 254:
        return ""
    try:
        validate_email(value)
    except ValidationError:
        return ""
    return value


def pick_github_email(emails: list[Any]) -> tuple[str, bool]:
    """GitHub's ``/user/emails``: the primary address when verified, else the first verified one,
    else the primary (unverified: never stored as an identifier)."""
    rows = [row for row in emails if isinstance(row, dict) and isinstance(row.get("email"), str)]
    for row in sorted(rows, key=lambda row: not row.get("primary")):
        if row.get("verified") is True:
            return row["email"], True
    primary = next((row["email"] for row in rows if row.get("primary")), "")
    return primary, False


def user_values(mapped: dict[str, Any], email: str) -> dict[str, Any]:
    """The new account's fields: the verified e-mail, the names (``given_name`` / ``family_name``,
    else the whole ``name`` as first name) and the upstream ``username`` when mapped."""
    from django.contrib.auth import get_user_model

    model = get_user_model()
    values: dict[str, Any] = {}
    if email:
        values[model.get_email_field_name()] = email
    if mapped.get("given_name") or mapped.get("family_name"):
        values["first_name"] = str(mapped.get("given_name", ""))[:150]
        values["last_name"] = str(mapped.get("family_name", ""))[:150]
    elif mapped.get("name"):
        values["first_name"] = str(mapped["name"])[:150]
    if mapped.get("username"):
        values[model.USERNAME_FIELD] = str(mapped["username"])[:150]
    return values
