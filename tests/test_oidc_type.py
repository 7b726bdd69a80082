"""The ``oidc`` authenticator type: signing in through an upstream provider.

Against a second, real Portcullis server (its hosted sign-in page driven like a browser), a fake
provider that misbehaves on demand, and a fake of GitHub's OAuth endpoints; and the settings form's
issuer rule (no server-side request forgery)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from authenticators.base import AuthError
from authenticators.models import Authenticator, UserAuthenticator
from authenticators.registry import registry
from authenticators.types.oidc import OidcAuth
from experience.errors import EngineError
from identity.identifiers import create_user
from identity.models import Profile
from tests.upstream import FakeProvider, UpstreamServer, free_port, query, sign_in_upstream, start_portcullis

CALLBACK = "http://127.0.0.1:9/auth/upstream/callback"  # never contacted: the browser stops there
User = get_user_model()


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: Any) -> Iterator[UpstreamServer]:
    server = start_portcullis(tmp_path_factory.mktemp("upstream"), [CALLBACK])
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _loopback_issuers(settings: Any) -> None:
    settings.PORTCULLIS_OIDC_ALLOW_INSECURE_ISSUERS = True


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    fake = FakeProvider()
    yield fake
    fake.stop()


def auth_of(authenticator: Authenticator) -> OidcAuth:
    auth = authenticator.get_auth()
    assert isinstance(auth, OidcAuth)
    return auth


def oidc_authenticator(**options: Any) -> Authenticator:
    return Authenticator.objects.create(name="upstream", auth_type="oidc", title="Upstream", options=options)


def portcullis_authenticator(upstream: UpstreamServer, **options: Any) -> Authenticator:
    return oidc_authenticator(issuer=upstream.issuer, client_id=upstream.client_id,
                              client_secret=upstream.client_secret, **options)


def sign_in_through(authenticator: Authenticator, upstream: UpstreamServer) -> Any:
    url, pending = auth_of(authenticator).begin(CALLBACK)
    params = sign_in_upstream(url, CALLBACK, identifier=upstream.username, password=upstream.password)
    return auth_of(authenticator).finish(params, pending)


def refused(work: Any) -> AuthError:
    with pytest.raises(AuthError) as caught:
        work()
    return caught.value


def counts() -> tuple[int, int]:
    return User.objects.count(), UserAuthenticator.objects.count()


def local_account(email: str, *, verified: bool = True) -> Any:
    return create_user({"username": "local", "email": email}, password="local password 123",
                       profile={"email_verified": verified})


# -- a second Portcullis as the upstream ---------------------------------------------------------------
def test_first_sign_in_creates_the_account_and_the_second_reuses_it(db: Any, upstream: UpstreamServer) -> None:
    authenticator = portcullis_authenticator(upstream, claims={"email": "email", "name": "name"})

    user = sign_in_through(authenticator, upstream)

    link = UserAuthenticator.objects.get(authenticator=authenticator)
    assert link.user == user and link.uuid == upstream.sub
    assert link.meta == {"email": upstream.email, "name": "Bob Upstream", "email_verified": True}
    assert user.email == upstream.email and user.first_name == "Bob Upstream"
    assert Profile.objects.get(user=user).email_verified is True
    assert not user.has_usable_password()

    again = sign_in_through(authenticator, upstream)
    assert again == user
    assert UserAuthenticator.objects.count() == 1 and User.objects.filter(email=upstream.email).count() == 1


def test_an_existing_account_is_linked_by_verified_e_mail_only_with_link_by_email(
        db: Any, upstream: UpstreamServer) -> None:
    account = local_account(upstream.email.upper())
    authenticator = portcullis_authenticator(upstream, link_by_email=True)

    assert sign_in_through(authenticator, upstream) == account
    assert UserAuthenticator.objects.get(authenticator=authenticator).user == account


def test_an_existing_account_is_refused_when_link_by_email_is_off(db: Any, upstream: UpstreamServer) -> None:
    local_account(upstream.email)
    authenticator = portcullis_authenticator(upstream)
    before = counts()

    assert refused(lambda: sign_in_through(authenticator, upstream)).code == "account_exists"
    assert counts() == before


def test_an_account_whose_own_e_mail_is_unverified_is_never_linked(db: Any, upstream: UpstreamServer) -> None:
    """Whoever registered the address without proving it must not receive the upstream's sign-ins."""
    local_account(upstream.email, verified=False)
    authenticator = portcullis_authenticator(upstream, link_by_email=True)
    before = counts()

    assert refused(lambda: sign_in_through(authenticator, upstream)).code == "account_exists"
    assert counts() == before


def test_sign_up_off_refuses_a_new_user(db: Any, upstream: UpstreamServer) -> None:
    authenticator = portcullis_authenticator(upstream, sign_up=False)

    assert refused(lambda: sign_in_through(authenticator, upstream)).code == "sign_up_disabled"
    assert counts() == (0, 0)


def test_a_forged_state_and_a_replayed_callback_are_refused(db: Any, upstream: UpstreamServer) -> None:
    authenticator = portcullis_authenticator(upstream)
    url, pending = auth_of(authenticator).begin(CALLBACK)
    params = sign_in_upstream(url, CALLBACK, identifier=upstream.username, password=upstream.password)

    forged = {**params, "state": "forged" + params["state"]}
    assert refused(lambda: auth_of(authenticator).finish(forged, pending)).code == "invalid_state"
    assert counts() == (0, 0)

    auth_of(authenticator).finish(params, pending)
    assert refused(lambda: auth_of(authenticator).finish(params, pending)).code == "invalid_state"
    assert UserAuthenticator.objects.count() == 1


def test_the_authorization_url_asks_for_pkce_s256_and_a_nonce(db: Any, upstream: UpstreamServer) -> None:
    url, pending = auth_of(portcullis_authenticator(upstream)).begin(CALLBACK, login_hint="bob@example.org")

    params = query(url)
    assert url.startswith(upstream.issuer + "/")
    assert params["client_id"] == upstream.client_id and params["redirect_uri"] == CALLBACK
    assert params["scope"] == "openid email profile" and params["response_type"] == "code"
    assert params["state"] == pending["state"] and params["nonce"] == pending["nonce"]
    assert params["code_challenge_method"] == "S256" and pending["code_verifier"] not in url
    assert params["login_hint"] == "bob@example.org"


def test_an_upstream_that_is_down_is_upstream_unavailable(db: Any) -> None:
    authenticator = oidc_authenticator(issuer=f"http://127.0.0.1:{free_port()}", client_id="x", client_secret="y")

    assert refused(lambda: auth_of(authenticator).begin(CALLBACK)).code == "upstream_unavailable"
    error = EngineError("upstream_unavailable")
    assert error.status == 503 and error.kind == "unavailable"


# -- a fake provider that misbehaves ---------------------------------------------------------------------
def fake_authenticator(provider: FakeProvider, **options: Any) -> Authenticator:
    return oidc_authenticator(issuer=provider.issuer, client_id=provider.client_id,
                              client_secret=provider.client_secret, **options)


def attempt(authenticator: Authenticator, provider: FakeProvider) -> Any:
    url, pending = auth_of(authenticator).begin(CALLBACK)
    return auth_of(authenticator).finish(provider.authorize(url), pending)


def test_the_fake_provider_signs_in(db: Any, provider: FakeProvider) -> None:
    user = attempt(fake_authenticator(provider), provider)

    assert user.email == "carol@example.net" and user.first_name == "Carol Upstream"
    assert UserAuthenticator.objects.get().uuid == provider.sub
    token_request = next(form for method, path, form in provider.requests if path == "/token")
    assert token_request["grant_type"] == "authorization_code" and token_request["code_verifier"]
    assert "client_secret" not in token_request  # client_secret_basic


@pytest.mark.parametrize(("fault", "code"), [
    ("nonce", "invalid_id_token"),
    ("aud", "invalid_id_token"),
    ("iss", "invalid_id_token"),
    ("other_key", "invalid_id_token"),
    ("unknown_kid", "invalid_id_token"),
    ("expired", "invalid_id_token"),
    ("bad_at_hash", "invalid_id_token"),
    ("no_id_token", "invalid_id_token"),
    ("token_500", "upstream_unavailable"),
    ("token_error", "upstream_error"),
])
def test_a_bad_answer_signs_nobody_in(db: Any, provider: FakeProvider, fault: str, code: str) -> None:
    local_account("carol@example.net")
    authenticator = fake_authenticator(provider, link_by_email=True)
    provider.faults.add(fault)
    before = counts()

    assert refused(lambda: attempt(authenticator, provider)).code == code
    assert counts() == before


def test_an_unknown_kid_refetches_the_keys_once(db: Any, provider: FakeProvider) -> None:
    authenticator = fake_authenticator(provider)
    attempt(authenticator, provider)
    provider.faults.add("unknown_kid")

    refused(lambda: attempt(authenticator, provider))

    assert [path for _method, path, _form in provider.requests].count("/jwks") == 2  # cached, then one refetch


def test_an_error_callback_is_upstream_error(db: Any, provider: FakeProvider) -> None:
    authenticator = fake_authenticator(provider)
    _url, pending = auth_of(authenticator).begin(CALLBACK)
    params = {"error": "access_denied", "state": pending["state"]}

    assert refused(lambda: auth_of(authenticator).finish(params, pending)).code == "upstream_error"
    assert counts() == (0, 0)


def test_an_unverified_e_mail_never_links_an_account(db: Any, provider: FakeProvider) -> None:
    local_account("carol@example.net")
    provider.claims["email_verified"] = False
    before = counts()

    assert refused(lambda: attempt(fake_authenticator(provider, link_by_email=True), provider)).code == "account_exists"
    assert counts() == before


def test_an_unverified_e_mail_is_not_stored_as_an_identifier(db: Any, provider: FakeProvider) -> None:
    provider.claims["email_verified"] = False

    user = attempt(fake_authenticator(provider), provider)

    assert user.email == ""
    assert UserAuthenticator.objects.get().meta["email_verified"] is False
    assert Profile.objects.get(user=user).email_verified is False


def test_an_upstream_gone_after_the_redirect_is_upstream_unavailable(db: Any, provider: FakeProvider) -> None:
    authenticator = fake_authenticator(provider)
    url, pending = auth_of(authenticator).begin(CALLBACK)
    params = provider.authorize(url)
    provider.stop()

    assert refused(lambda: auth_of(authenticator).finish(params, pending)).code == "upstream_unavailable"
    assert counts() == (0, 0)


def test_a_mixed_up_callback_issuer_is_refused(db: Any, provider: FakeProvider) -> None:
    """RFC 9207: the callback's iss must name the provider the user was sent to."""
    authenticator = fake_authenticator(provider)
    url, pending = auth_of(authenticator).begin(CALLBACK)
    params = {**provider.authorize(url), "iss": "https://attacker.example"}

    assert refused(lambda: auth_of(authenticator).finish(params, pending)).code == "upstream_error"


def test_entra_multi_tenant_issuer_is_checked_with_the_token_tenant(db: Any, provider: FakeProvider) -> None:
    provider.issuer_template = provider.url + "/{tenantid}/v2.0"
    authenticator = oidc_authenticator(preset="microsoft", issuer=provider.url + "/common/v2.0",
                                       client_id=provider.client_id, client_secret=provider.client_secret)

    assert attempt(authenticator, provider).email == "carol@example.net"

    provider.claims["tid"] = "another-tenant"  # iss says tenant-1
    assert refused(lambda: attempt(authenticator, provider)).code == "invalid_id_token"


def test_connection_checks_discovery_issuer_and_keys(db: Any, provider: FakeProvider) -> None:
    results = auth_of(fake_authenticator(provider)).test_connection()

    assert [passed for passed, _message in results] == [True, True, True]
    assert results[2][1] == "Signing keys published: 1"

    down = Authenticator.objects.create(name="down", auth_type="oidc", title="Down",
                                        options={"issuer": f"http://127.0.0.1:{free_port()}", "client_id": "x"})
    assert [passed for passed, _message in auth_of(down).test_connection()] == [False]


# -- GitHub -----------------------------------------------------------------------------------------------
def github_authenticator(provider: FakeProvider, **options: Any) -> Authenticator:
    return oidc_authenticator(
        preset="github", client_id=provider.client_id, client_secret=provider.client_secret,
        authorization_endpoint=provider.url + "/login/oauth/authorize",
        token_endpoint=provider.url + "/login/oauth/access_token", userinfo_endpoint=provider.url + "/user",
        emails_endpoint=provider.url + "/user/emails", **options)


def test_github_signs_in_with_the_verified_primary_e_mail(db: Any, provider: FakeProvider) -> None:
    provider.github_user = {"id": 4242, "login": "octo", "name": "Octo Cat", "email": "public@example.com"}
    provider.github_emails = [{"email": "old@example.com", "primary": False, "verified": True},
                              {"email": "octo@example.com", "primary": True, "verified": True},
                              {"email": "new@example.com", "primary": False, "verified": False}]
    authenticator = github_authenticator(provider)

    url, pending = auth_of(authenticator).begin(CALLBACK)
    assert url.startswith(provider.url + "/login/oauth/authorize?")
    assert query(url)["scope"] == "read:user user:email" and "nonce" not in query(url)
    user = auth_of(authenticator).finish(provider.authorize(url), pending)

    assert user.email == "octo@example.com" and user.first_name == "Octo Cat"
    link = UserAuthenticator.objects.get()
    assert link.uuid == "4242" and link.meta["email_verified"] is True


def test_github_without_a_verified_address_stores_no_e_mail(db: Any, provider: FakeProvider) -> None:
    provider.github_user = {"id": 7, "login": "nomail", "name": "", "email": None}
    provider.github_emails = [{"email": "nomail@example.com", "primary": True, "verified": False}]

    user = attempt(github_authenticator(provider), provider)

    assert user.email == "" and UserAuthenticator.objects.get().uuid == "7"


def test_github_refusing_the_code_is_upstream_error(db: Any, provider: FakeProvider) -> None:
    provider.github_user = {"id": 7, "login": "x"}
    provider.faults.add("token_error")

    assert refused(lambda: attempt(github_authenticator(provider), provider)).code == "upstream_error"
    assert counts() == (0, 0)


# -- the settings form -------------------------------------------------------------------------------------
def settings_form(**data: Any) -> Any:
    auth_type = registry.get("oidc")
    assert auth_type is not None and auth_type.settings_form is not None
    return auth_type.settings_form(data={**auth_type.initial_options(), "client_id": "client", **data})


@pytest.mark.parametrize("issuer", [
    "http://idp.example.com", "https://10.0.0.1", "https://169.254.169.254/latest", "http://localhost:8000",
    "https://localhost", "https://[::1]", "https://192.168.1.10", "ftp://idp.example.com", "https://user:pw@idp.example.com",
])
def test_the_form_refuses_issuers_that_break_the_rule(settings: Any, issuer: str) -> None:
    settings.PORTCULLIS_OIDC_ALLOW_INSECURE_ISSUERS = False
    settings.DEBUG = False

    form = settings_form(issuer=issuer)

    assert not form.is_valid() and "issuer" in form.errors


def test_loopback_http_needs_debug_or_the_setting_and_private_addresses_the_setting(settings: Any) -> None:
    settings.PORTCULLIS_OIDC_ALLOW_INSECURE_ISSUERS = False
    settings.DEBUG = True
    assert settings_form(issuer="http://localhost:8000").is_valid()
    assert not settings_form(issuer="https://10.0.0.1").is_valid()

    settings.DEBUG = False
    settings.PORTCULLIS_OIDC_ALLOW_INSECURE_ISSUERS = True
    assert settings_form(issuer="http://127.0.0.1:8000").is_valid()
    assert settings_form(issuer="https://10.0.0.1").is_valid()
    assert not settings_form(issuer="http://10.0.0.1").is_valid()  # http on loopback only


def test_request_time_refuses_a_stored_private_issuer(db: Any, settings: Any) -> None:
    settings.PORTCULLIS_OIDC_ALLOW_INSECURE_ISSUERS = False
    authenticator = oidc_authenticator(issuer="https://169.254.169.254", client_id="x")

    error = refused(lambda: auth_of(authenticator).begin(CALLBACK))
    assert error.code == "upstream_unavailable" and error.reason.startswith("refused")


def test_presets_fill_in_what_they_know() -> None:
    google = settings_form(preset="google")
    assert google.is_valid(), google.errors
    assert google.cleaned_data["issuer"] == "https://accounts.google.com"

    microsoft = settings_form(preset="microsoft", tenant="contoso.onmicrosoft.com")
    assert microsoft.is_valid(), microsoft.errors
    assert microsoft.cleaned_data["issuer"] == "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0"
    assert settings_form(preset="microsoft").is_valid()

    github = settings_form(preset="github")
    assert github.is_valid(), github.errors
    assert github.cleaned_data["token_endpoint"] == "https://github.com/login/oauth/access_token"
    assert github.cleaned_data["emails_endpoint"] == "https://api.github.com/user/emails"
    assert github.cleaned_data["scopes"] == ["read:user", "user:email"]


@pytest.mark.parametrize("claims", ['{"email": 1}', "[1, 2]", "not json", '{"": "email"}'])
def test_the_claim_mapping_must_be_an_object_of_names(claims: str) -> None:
    form = settings_form(preset="google", claims=claims)

    assert not form.is_valid() and "claims" in form.errors


def test_scopes_need_openid_and_domains_must_be_domain_names() -> None:
    assert "scopes" in settings_form(preset="google", scopes="email profile").errors
    assert "domains" in settings_form(preset="google", domains="example.com not_a_domain!").errors

    form = settings_form(preset="google", scopes="openid email", domains="Example.com, @corp.example.org")
    assert form.is_valid(), form.errors
    assert form.cleaned_data["scopes"] == ["openid", "email"]
    assert form.cleaned_data["domains"] == ["example.com", "corp.example.org"]


def test_an_issuer_is_required_without_a_preset() -> None:
    assert "issuer" in settings_form().errors


# -- accounts: usernames, races ------------------------------------------------------------------------
def test_a_mapped_username_is_kept_when_free(db: Any, provider: FakeProvider) -> None:
    provider.claims["preferred_username"] = "carol"
    claims = {"email": "email", "name": "name", "username": "preferred_username"}

    assert attempt(fake_authenticator(provider, claims=claims), provider).username == "carol"


def test_a_taken_username_gives_a_generated_one(db: Any, provider: FakeProvider) -> None:
    create_user({"username": "carol"}, password="local password 123")
    provider.claims["preferred_username"] = "Carol"
    claims = {"email": "email", "username": "preferred_username"}

    user = attempt(fake_authenticator(provider, claims=claims), provider)

    assert user.username == f"upstream-{provider.sub}" and user.email == "carol@example.net"


def test_parallel_first_sign_ins_make_one_account(transactional_db: Any, provider: FakeProvider) -> None:
    from tests.helpers import run_together

    authenticator = fake_authenticator(provider)
    legs = [auth_of(authenticator).begin(CALLBACK) for _ in range(4)]
    callbacks = [(provider.authorize(url), pending) for url, pending in legs]

    results = run_together(4, lambda index: auth_of(authenticator).finish(*callbacks[index]))

    assert not [result for result in results if isinstance(result, BaseException)], results
    assert len({result.pk for result in results}) == 1
    assert counts() == (1, 1)


def test_the_form_renders_stored_options() -> None:
    """Stored options are JSON values (a dict of claims, lists), not the text a browser posts."""
    html = str(settings_form(preset="github", claims={"email": "email", "username": "login"},
                             domains=["example.com"]))

    assert "&quot;username&quot;: &quot;login&quot;" in html and 'value="example.com"' in html
