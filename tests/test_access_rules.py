"""Access rules enforced (SPEC §5): e-mail domains, IP ranges (through the trusted proxy header only
when one is configured) and regions refuse at sign-in, on the hosted pages and the APIs, with the
``forbidden`` error of their code and an explaining page, and again at the token endpoint: a refresh
after the rule changed is refused. Plus the project's own rules in code (``PORTCULLIS_ACCESS_RULES``)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import RequestFactory, override_settings

from experience.access import Decision
from experience.models import ApplicationExperience, AuditEvent, Experience
from identity.network import client_ip, client_region
from tests.helpers import (
    PASSWORD,
    Flow,
    authorize_params,
    error_of,
    make_application,
    refresh,
    sign_in_url_from,
    tokens_for,
)
from tests.test_experience_api import API, Api, error

XFF = "X-Forwarded-For"
PROXIED = {"HTTP_X_FORWARDED_FOR": "198.51.100.9, 203.0.113.7", "REMOTE_ADDR": "10.0.0.1"}


def rules_of(app: Any, **access_rules: list[str]) -> None:
    """``app``'s experience overrides its access rules (the rest inherits the default)."""
    row, _ = ApplicationExperience.objects.get_or_create(application=app.application)
    row.set_document({"access_rules": access_rules})
    row.full_clean()
    row.save()


def default_rules(**access_rules: list[str]) -> None:
    row = Experience.objects.filter(key="default").first() or Experience(authenticators=["password", "email-code"])
    for name, value in access_rules.items():
        setattr(row, name, value)
    row.save()


def sign_in_page(client: Any, app: Any, **meta: str) -> tuple[str, Any]:
    """authorize → the hosted sign-in page's URL, and the password posted there (with ``meta``)."""
    location = sign_in_url_from(client.get("/oauth/authorize", authorize_params(app), **meta))
    return location, client.post(location, {"identifier": "alice", "password": PASSWORD, "authenticator": "password"},
                                 **meta)


def assert_denied_page(response: Any, message: str) -> None:
    assert response.status_code == 403, response.content[:300]
    html = response.content.decode()
    assert "Signing in is not allowed" in html and message in html
    # the rule and its reason are the admin's (in the audit log), not the page's
    assert not any(word in html for word in ("email_domains", "ip_allow", "ip_deny", "regions_", "matches", "198.51.100"))


# -- the client's address and region: one rule ------------------------------------------------------------
def request_with(**meta: str) -> Any:
    return RequestFactory().get("/", **meta)


def test_without_a_trusted_header_a_spoofed_forwarded_for_is_ignored():
    assert client_ip(request_with(**PROXIED)) == "10.0.0.1"


@override_settings(PORTCULLIS_TRUSTED_PROXY_HEADER=XFF)
def test_with_the_trusted_header_its_last_address_is_the_client():
    assert client_ip(request_with(**PROXIED)) == "203.0.113.7"  # the one the proxy appended
    assert client_ip(request_with(HTTP_X_FORWARDED_FOR="[2001:db8::5]:443", REMOTE_ADDR="10.0.0.1")) == "2001:db8::5"
    assert client_ip(request_with(HTTP_X_FORWARDED_FOR="::ffff:203.0.113.8")) == "203.0.113.8"
    assert client_ip(request_with(REMOTE_ADDR="10.0.0.2")) == "10.0.0.2"  # no header: the socket address
    for garbage in ("1.2.3.4, not-an-ip", "999.1.1.1", "\x00", ",", "1.2.3.4,"):
        assert client_ip(request_with(HTTP_X_FORWARDED_FOR=garbage, REMOTE_ADDR="10.0.0.1")) is None, garbage


def test_regions_come_only_from_the_configured_header():
    assert client_region(request_with(HTTP_CF_IPCOUNTRY="DE")) is None
    with override_settings(PORTCULLIS_REGION_HEADER="CF-IPCountry"):
        assert client_region(request_with(HTTP_CF_IPCOUNTRY=" de ")) == "DE"
        for garbage in ("Germany", "", "D", "1", "<b>"):
            assert client_region(request_with(HTTP_CF_IPCOUNTRY=garbage)) is None, garbage


# -- at sign-in, on the hosted pages ------------------------------------------------------------------------
def test_a_denied_email_domain_is_refused_on_the_sign_in_page(client, user, confidential_app):
    rules_of(confidential_app, email_domains_deny=["example.com"])
    _page, response = sign_in_page(client, confidential_app)
    assert_denied_page(response, "Accounts of this e-mail domain may not sign in here.")
    assert "_auth_user_id" not in client.session  # nobody signed in
    event = AuditEvent.objects.get(kind=AuditEvent.ACCESS_DENIED)
    assert (event.reason, event.client_id, event.user) == ("email_domain_denied", confidential_app.client_id, user)


def test_another_application_without_the_rule_still_signs_in(client, user, confidential_app, other_app):
    rules_of(confidential_app, email_domains_deny=["example.com"])
    assert tokens_for(client_flow(client), other_app)["access_token"]


@override_settings(PORTCULLIS_TRUSTED_PROXY_HEADER=XFF)
def test_an_ip_outside_the_allowed_range_via_the_trusted_header_is_refused(client, user, confidential_app):
    rules_of(confidential_app, ip_allow=["203.0.113.0/24"])
    outside = {"HTTP_X_FORWARDED_FOR": "203.0.113.7, 198.51.100.9", "REMOTE_ADDR": "203.0.113.1"}
    location = sign_in_url_from(client.get("/oauth/authorize", authorize_params(confidential_app), **outside))
    assert_denied_page(client.get(location, **outside), "Signing in from this network is not allowed.")  # at once
    response = client.post(location, {"identifier": "alice", "password": PASSWORD, "authenticator": "password"}, **outside)
    assert_denied_page(response, "Signing in from this network is not allowed.")
    assert set(AuditEvent.objects.filter(kind=AuditEvent.ACCESS_DENIED).values_list("reason", "ip")) == {
        ("ip_denied", "198.51.100.9")}
    inside = {"HTTP_X_FORWARDED_FOR": "198.51.100.9, 203.0.113.7"}  # the last address is the proxy's view
    assert tokens_for(client_flow(client, **inside), confidential_app)["access_token"]


@override_settings(PORTCULLIS_TRUSTED_PROXY_HEADER=XFF, PORTCULLIS_REGION_HEADER="CF-IPCountry")
def test_malformed_proxy_headers_are_unknown_never_a_500(client, user, confidential_app):
    garbage = {"HTTP_X_FORWARDED_FOR": "203.0.113.7, <script>", "HTTP_CF_IPCOUNTRY": "\u00e9\u00e9"}
    rules_of(confidential_app, ip_allow=["203.0.113.0/24"])
    _page, response = sign_in_page(client, confidential_app, **garbage)
    assert_denied_page(response, "Signing in from this network is not allowed.")  # unknown: not in the allow list
    assert AuditEvent.objects.get(kind=AuditEvent.ACCESS_DENIED).ip is None
    rules_of(confidential_app, ip_deny=["203.0.113.0/24"], regions_deny=["DE"])  # deny lists: unknown is not denied
    assert tokens_for(client_flow(client, **garbage), confidential_app)["access_token"]


def test_a_spoofed_proxy_header_is_ignored_when_no_trusted_header_is_configured(client, user, confidential_app):
    rules_of(confidential_app, ip_allow=["203.0.113.0/24"])
    spoofed = {"HTTP_X_FORWARDED_FOR": "203.0.113.7", "REMOTE_ADDR": "192.0.2.50"}
    _page, response = sign_in_page(client, confidential_app, **spoofed)
    assert_denied_page(response, "Signing in from this network is not allowed.")
    assert AuditEvent.objects.get(kind=AuditEvent.ACCESS_DENIED).ip == "192.0.2.50"


@override_settings(PORTCULLIS_REGION_HEADER="CF-IPCountry")
def test_a_denied_region_is_refused(client, user, confidential_app):
    rules_of(confidential_app, regions_deny=["RU"])
    _page, response = sign_in_page(client, confidential_app, HTTP_CF_IPCOUNTRY="RU")
    assert_denied_page(response, "Signing in from this region is not allowed.")
    assert tokens_for(client_flow(client, HTTP_CF_IPCOUNTRY="DE"), confidential_app)["access_token"]


def test_an_ipv6_range_and_an_allow_list_of_domains(client, user, confidential_app):
    rules_of(confidential_app, ip_deny=["2001:db8::/32"], email_domains_allow=["example.org"])
    _page, response = sign_in_page(client, confidential_app, REMOTE_ADDR="2001:db8::1")
    assert_denied_page(response, "Signing in from this network is not allowed.")
    _page, response = sign_in_page(client, confidential_app, REMOTE_ADDR="2001:db9::1")
    assert_denied_page(response, "Accounts of this e-mail domain may not sign in here.")  # example.com is not listed
    rules_of(confidential_app, ip_deny=["2001:db8::/32"], email_domains_allow=["example.org", "example.com"])
    assert tokens_for(client_flow(client, REMOTE_ADDR="2001:db9::1"), confidential_app)["access_token"]


def test_the_default_experience_rules_apply_to_every_application(client, user, confidential_app):
    default_rules(email_domains_deny=["*.com"])
    _page, response = sign_in_page(client, confidential_app)
    assert_denied_page(response, "Accounts of this e-mail domain may not sign in here.")


# -- at sign-in, through the APIs ---------------------------------------------------------------------------
def test_the_experience_api_answers_forbidden(client, user, confidential_app):
    rules_of(confidential_app, email_domains_deny=["example.com"])
    api = Api(client)
    authorize = "/oauth/authorize?" + "&".join(f"{k}={v}" for k, v in authorize_params(confidential_app).items())
    state = api.start(next_url=authorize)
    response = api.post(f"{API}{state['id']}/password", {"identifier": "alice", "password": PASSWORD})
    body = error(response, 403, "forbidden", "email_domain_denied")
    assert set(body) == {"code", "message"}  # the code and a neutral message, nothing of the rule
    assert api.get(f"{API}{state['id']}").json()["identified"] is False


@override_settings(PORTCULLIS_REGION_HEADER="CF-IPCountry")
def test_the_auth_api_answers_forbidden_for_a_region(client, user):
    app = make_application(name="Shop", headless=True)
    rules_of(app, regions_allow=["DE"])
    body = {"client_id": app.client_id, "client_secret": app.client_secret, "identifier": "alice", "password": PASSWORD}
    response = client.post("/api/auth/sign-in", json.dumps(body), content_type="application/json",
                           HTTP_X_AUTHENTICATOR="password", HTTP_CF_IPCOUNTRY="FR")
    assert response.status_code == 403 and response.json()["forbidden"]["code"] == "region_denied", response.content
    response = client.post("/api/auth/sign-in", json.dumps(body), content_type="application/json",
                           HTTP_X_AUTHENTICATOR="password")  # no header: the region is unknown, not allowed
    assert response.status_code == 403 and response.json()["forbidden"]["code"] == "region_denied"
    response = client.post("/api/auth/sign-in", json.dumps(body), content_type="application/json",
                           HTTP_X_AUTHENTICATOR="password", HTTP_CF_IPCOUNTRY="DE")
    assert response.status_code == 200 and response.json()["refresh_token"]


# -- at token issuance: a refresh after the rule changes ----------------------------------------------------
def refresh_refused(client: Any, app: Any, refresh_token: str) -> None:
    response = refresh(client, app, refresh_token)
    assert response.status_code == 400 and error_of(response) == "invalid_grant", response.content
    assert "email_domain_denied" in response.json()["error_description"]


def test_a_refresh_after_the_domain_is_denied_is_refused_and_ends_the_family(client, user, confidential_app):
    tokens = tokens_for(client_flow(client), confidential_app)
    rules_of(confidential_app, email_domains_deny=["example.com"])
    refresh_refused(client, confidential_app, tokens["refresh_token"])
    rules_of(confidential_app)  # the rule lifted: the family stays ended, the user signs in again
    assert error_of(refresh(client, confidential_app, tokens["refresh_token"])) == "invalid_grant"
    assert client.get("/oauth/userinfo", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}").status_code == 401
    assert AuditEvent.objects.filter(kind=AuditEvent.ACCESS_DENIED, reason="email_domain_denied",
                                     client_id=confidential_app.client_id).count() == 1


def test_a_refresh_after_the_default_experience_denies_the_domain_is_refused(client, user, confidential_app):
    tokens = tokens_for(client_flow(client), confidential_app)
    default_rules(email_domains_allow=["example.org"])
    refresh_refused(client, confidential_app, tokens["refresh_token"])


@override_settings(PORTCULLIS_TRUSTED_PROXY_HEADER=XFF, PORTCULLIS_REGION_HEADER="CF-IPCountry")
@pytest.mark.parametrize("rule", [{"ip_allow": ["203.0.113.0/24"]}, {"regions_deny": ["DE"]}])
def test_ip_and_region_rules_refuse_the_next_sign_in_not_the_servers_refresh(client, user, confidential_app, rule):
    """A confidential client's refresh comes from its server, whose address and region are not the
    user's: after an IP or region rule changes, the refresh still works and the device's next
    sign-in (here: its next authorization request, signed in already) is refused."""
    device = {"HTTP_X_FORWARDED_FOR": "198.51.100.9", "HTTP_CF_IPCOUNTRY": "DE"}
    tokens = tokens_for(client_flow(client, **device), confidential_app)
    rules_of(confidential_app, **rule)
    assert refresh(client, confidential_app, tokens["refresh_token"]).status_code == 200
    response = client.get("/oauth/authorize", authorize_params(confidential_app), **device)  # signed in already
    assert response.status_code == 403 and b"not allowed" in response.content


@override_settings(PORTCULLIS_TRUSTED_PROXY_HEADER=XFF, PORTCULLIS_REGION_HEADER="CF-IPCountry")
@pytest.mark.parametrize(("rule", "code"), [({"ip_allow": ["203.0.113.0/24"]}, "ip_denied"),
                                            ({"regions_deny": ["DE"]}, "region_denied")])
def test_a_public_clients_refresh_comes_from_the_device_and_is_refused_after_an_ip_or_region_rule(
        client, user, public_app, rule, code):
    """A single-page or mobile application (a public client) refreshes from the user's device: the
    IP and region rules apply to its refresh too, through the trusted header."""
    tokens = tokens_for(client_flow(client, HTTP_X_FORWARDED_FOR="10.9.9.9, 198.51.100.9", HTTP_CF_IPCOUNTRY="DE"),
                        public_app)
    rules_of(public_app, **rule)
    response = refresh(client, public_app, tokens["refresh_token"])
    assert response.status_code == 400 and error_of(response) == "invalid_grant", response.content
    assert f"({code})" in response.json()["error_description"]
    assert AuditEvent.objects.get(kind=AuditEvent.ACCESS_DENIED).ip == "198.51.100.9"


def test_a_code_redeemed_after_the_domain_is_denied_is_refused(client, user, confidential_app):
    flow = client_flow(client)
    code, params = flow.code_for(confidential_app)
    rules_of(confidential_app, email_domains_deny=["example.com"])
    response = flow.token(confidential_app, code, params)
    assert response.status_code == 400 and error_of(response) == "invalid_grant"


def test_a_signed_in_user_is_refused_a_code_for_an_application_that_denies_them(client, user, confidential_app, other_app):
    tokens_for(client_flow(client), other_app)
    rules_of(confidential_app, email_domains_deny=["example.com"])
    response = client.get("/oauth/authorize", authorize_params(confidential_app))
    assert response.status_code == 403 and "code=" not in response.get("Location", "")
    assert "Accounts of this e-mail domain may not sign in here." in response.content.decode()


def test_a_headless_refresh_after_the_domain_is_denied_is_refused(client, user):
    app = make_application(name="Shop", headless=True)
    body = {"client_id": app.client_id, "client_secret": app.client_secret, "identifier": "alice", "password": PASSWORD}
    response = client.post("/api/auth/sign-in", json.dumps(body), content_type="application/json",
                           HTTP_X_AUTHENTICATOR="password")
    assert response.status_code == 200, response.content
    rules_of(app, email_domains_deny=["example.com"])
    refresh_refused(client, app, response.json()["refresh_token"])
    response = client.post("/api/auth/sign-in", json.dumps(body), content_type="application/json",
                           HTTP_X_AUTHENTICATOR="password")
    assert response.status_code == 403 and response.json()["forbidden"]["code"] == "email_domain_denied"


# -- custom rules in code -----------------------------------------------------------------------------------
SUSPENDED: set[str] = set()


def no_suspended(check: Any) -> Decision | None:
    """A project's rule: the accounts a (here: the test's) list names may not use any application."""
    if check.user is not None and check.user.get_username() in SUSPENDED:
        return Decision(False, "forbidden", "suspended", "the account is on the suspension list")
    return None


@pytest.fixture
def suspended() -> Any:
    SUSPENDED.clear()
    yield SUSPENDED
    SUSPENDED.clear()


@override_settings(PORTCULLIS_ACCESS_RULES=["tests.test_access_rules.no_suspended"])
def test_a_custom_rule_refuses_at_refresh_and_at_sign_in(client, user, confidential_app, suspended):
    tokens = tokens_for(client_flow(client), confidential_app)
    renewed = refresh(client, confidential_app, tokens["refresh_token"])
    assert renewed.status_code == 200  # the rule is asked and allows
    suspended.add("alice")
    response = refresh(client, confidential_app, renewed.json()["refresh_token"])
    assert error_of(response) == "invalid_grant" and "(forbidden)" in response.json()["error_description"]
    client.logout()
    _page, response = sign_in_page(client, confidential_app)
    assert response.status_code == 403 and "This request is not allowed." in response.content.decode()
    assert set(AuditEvent.objects.filter(kind=AuditEvent.ACCESS_DENIED).values_list("reason", flat=True)) == {"forbidden"}


# -- helpers ------------------------------------------------------------------------------------------------
def client_flow(client: Any, **meta: str) -> Flow:
    """The helpers' Flow, every request of ``client`` carrying ``meta`` from now on (the proxy's
    headers, the socket address)."""
    client.defaults.update(meta)
    return Flow(client)


# -- the admin's simulator ----------------------------------------------------------------------------------
SIMULATOR = "/admin/experience/experience/simulate/"


def test_the_simulator_names_the_rule_that_decides_and_why(admin_client, user, confidential_app):
    from django.urls import reverse

    assert reverse("admin:experience_experience_simulate") == SIMULATOR
    default_rules(ip_deny=["2001:db8::/32"])
    rules_of(confidential_app, email_domains_deny=["*.example.com"])
    app = confidential_app.application.pk
    page = admin_client.get(SIMULATOR, {"application": app, "email": "bob@mail.example.com", "ip": "", "region": ""})
    html = page.content.decode()
    assert page.status_code == 200 and "Refused" in html and "email_domains_deny" in html
    assert "the domain mail.example.com matches *.example.com" in html
    assert "application" in html and "default" in html  # where each list comes from
    page = admin_client.get(SIMULATOR, {"application": app, "email": "alice@example.com", "ip": "2001:db8::7"})
    assert "ip_deny" in page.content.decode() and "the address 2001:db8::7 is in 2001:db8::/32" in page.content.decode()
    page = admin_client.get(SIMULATOR, {"application": "", "email": "bob@mail.example.com", "ip": "192.0.2.1"})
    assert "Allowed" in page.content.decode()  # the default experience does not deny the domain
    page = admin_client.get(SIMULATOR, {"application": app, "email": "alice@example.com", "region": "de"})
    assert page.status_code == 200 and "Allowed" in page.content.decode()  # the account's own domain is allowed


def test_the_simulator_answers_bad_input_with_field_errors(admin_client, db):
    for bad in ({"ip": "300.1.1.1"}, {"region": "ZZ"}, {"region": "Germany"}, {"email": "not-an-address"},
                {"application": "999999"}, {"application": "x\x00"}, {"ip": "1" * 5000}):
        page = admin_client.get(SIMULATOR, bad)
        assert page.status_code == 400, (bad, page.status_code)
        assert "errorlist" in page.content.decode() and "Decision" not in page.content.decode()
    assert admin_client.get(SIMULATOR).status_code == 200  # the empty form


def test_the_simulator_is_staff_only(client, user, django_user_model):
    assert client.get(SIMULATOR)["Location"].startswith("/admin/login/")
    client.force_login(user)
    assert client.get(SIMULATOR)["Location"].startswith("/admin/login/")  # not staff
    staff = django_user_model.objects.create_user("staffer", "staff@example.com", PASSWORD, is_staff=True)
    client.force_login(staff)
    assert client.get(SIMULATOR).status_code == 403  # staff without the view permission
