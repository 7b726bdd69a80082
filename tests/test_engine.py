"""The interaction engine called directly, as every face calls it: the gates in SPEC §2's order, a
second factor added to an identified interaction, the completion strategies, and the authenticator
kinds (code, redirect, second factor) through their base classes."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from django import forms
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.db import connections
from django.test import RequestFactory

from authenticators.base import AuthError, CodeAuth, RedirectAuth, SecondFactorAuth
from authenticators.models import Authenticator, OneTimeCode, UserAuthenticator
from authenticators.registry import registry
from experience import errors
from experience import interaction as engine
from experience.completion import ApplicationToken
from experience.errors import EngineError
from experience.gates import RequirementMissing
from experience.models import Interaction
from experience.policy import MfaPolicy, Policy, policy_for
from tests.helpers import PASSWORD, introspect, jwt_payload, refresh

OUTBOX: list[tuple[str, str]] = []


def browser_request(session: SessionStore | None = None) -> Any:
    request = RequestFactory().post("/sign-in/x/")
    request.session = session or SessionStore()
    request.user = AnonymousUser()
    return request


def password_data(identifier: str = "alice", password: str = PASSWORD) -> dict[str, str]:
    return {"identifier": identifier, "password": password}


# -- test types, one per kind -----------------------------------------------------------------------
class InboxCodeAuth(CodeAuth):
    """A code type that delivers to OUTBOX and signs in by username."""

    def destination(self, data: dict[str, Any]) -> str:
        name = str(data.get("username") or "").strip().lower()
        if not name:
            raise AuthError("invalid_input")
        return name

    def user_for(self, destination: str) -> Any | None:
        from django.contrib.auth import get_user_model

        return get_user_model().objects.filter(username=destination, is_active=True).first()

    def deliver(self, destination: str, code: str, *, user: Any, timeout: int) -> None:
        OUTBOX.append((destination, code))

    def amr(self) -> list[str]:
        return ["otp"]


class PinFactorAuth(SecondFactorAuth):
    """A second factor: a PIN kept in the user's link to this authenticator."""

    def enrolled(self, user: Any) -> bool:
        return UserAuthenticator.objects.filter(authenticator=self.authenticator, user=user).exists()

    def verify_for(self, user: Any, data: dict[str, Any]) -> None:
        link = UserAuthenticator.objects.get(authenticator=self.authenticator, user=user)
        if data.get("pin") != link.meta.get("pin"):
            raise AuthError("invalid_code")

    def amr(self) -> list[str]:
        return ["pin"]


class UpstreamAuth(RedirectAuth):
    """An upstream that 'authenticates' whoever its callback names (the base checks the state)."""

    def authorize_url(self, *, redirect_uri: str, state: str, nonce: str, code_verifier: str,
                      login_hint: str = "") -> str:
        return f"https://upstream.example/authorize?state={state}&redirect_uri={redirect_uri}"

    def complete(self, params: dict[str, Any], pending: dict[str, Any]) -> Any:
        from django.contrib.auth import get_user_model

        return get_user_model().objects.filter(username=params.get("who")).first()


class CodeForm(forms.Form):
    username = forms.CharField()


@pytest.fixture
def kinds(db: Any) -> Any:
    registry.register("test-code", InboxCodeAuth, sign_in_form=CodeForm, replace=True)
    registry.register("test-pin", PinFactorAuth, replace=True)
    registry.register("test-upstream", UpstreamAuth, replace=True)
    OUTBOX.clear()
    yield {
        "code": Authenticator.objects.create(name="inbox", auth_type="test-code", title="Code", sort_order=5),
        "pin": Authenticator.objects.create(name="pin", auth_type="test-pin", title="PIN", sort_order=6),
        "upstream": Authenticator.objects.create(name="up", auth_type="test-upstream", title="Up", sort_order=7),
    }
    for name in ("test-code", "test-pin", "test-upstream"):
        registry.unregister(name)


@pytest.fixture
def pin_policy(monkeypatch: Any) -> Policy:
    policy = Policy(mfa=MfaPolicy(policy="optional", factors=("test-pin",)))
    monkeypatch.setattr("experience.policy.resolve", lambda client_id: policy)
    return policy


def enrol_pin(kinds: Any, user: Any, pin: str = "2468") -> None:
    UserAuthenticator.objects.create(authenticator=kinds["pin"], user=user, uuid=str(user.pk), meta={"pin": pin})


def gate_of(request: Any, interaction: Interaction) -> tuple[str, list[str]]:
    with pytest.raises(RequirementMissing) as missing:
        engine.submit(request, interaction)
    return missing.value.gate, missing.value.data["methods"]


# -- the gates --------------------------------------------------------------------------------------------
def test_an_empty_interaction_asks_to_identify_with_the_first_factors_in_order(user, kinds):
    request = browser_request()
    interaction = engine.start(request)
    # email-code is one of the default authenticators (enabled by a data migration, sort order 10).
    assert gate_of(request, interaction) == ("identify", ["password", "inbox", "up", "email-code"])
    assert engine.describe(request, interaction)["next_step"] == "identify"


def test_a_demanded_captcha_comes_before_everything(user):
    request = browser_request()
    interaction = engine.start(request)
    interaction.state["captcha"] = {"required": True, "passed": False}
    assert gate_of(request, interaction)[0] == "captcha_required"
    interaction.state["captcha"]["passed"] = True
    assert gate_of(request, interaction)[0] == "identify"


def test_forgot_password_needs_the_new_password_after_identifying(user):
    request = browser_request()
    interaction = engine.start(request, Interaction.FORGOT_PASSWORD)
    engine.verify(request, interaction, Authenticator.objects.get(name="password"), password_data())
    assert gate_of(request, interaction)[0] == "new_password_required"
    engine.set_profile(request, interaction, {"password": "a long and unusual passphrase"})
    assert interaction.state["password_set"] is True
    assert engine.submit(request, interaction).redirect_to == "/"
    user.refresh_from_db()
    assert user.check_password("a long and unusual passphrase")  # applied by submit


def test_a_user_with_a_second_factor_proves_it_before_the_session_exists(user, kinds, pin_policy):
    enrol_pin(kinds, user)
    request = browser_request()
    interaction = engine.start(request)
    engine.verify(request, interaction, Authenticator.objects.get(name="password"), password_data())
    assert gate_of(request, interaction) == ("second_factor_required", ["test-pin"])
    assert "_auth_user_id" not in request.session  # nobody is signed in after the first factor
    with pytest.raises(EngineError) as wrong:
        engine.verify_second_factor(request, interaction, kinds["pin"], {"pin": "0000"})
    assert (wrong.value.kind, wrong.value.code) == ("key", "invalid_code")
    engine.verify_second_factor(request, interaction, kinds["pin"], {"pin": "2468"})
    interaction.refresh_from_db()
    assert [v["factor"] for v in interaction.state["verifications"]] == ["first", "second"]
    engine.submit(request, interaction)
    auth = request.session["portcullis_auth"]
    assert auth["amr"] == ["mfa", "pin", "pwd"] and auth["acr"] == "urn:portcullis:acr:2fa"


def test_a_second_factor_cannot_be_verified_before_identifying(user, kinds, pin_policy):
    enrol_pin(kinds, user)
    request = browser_request()
    interaction = engine.start(request)
    with pytest.raises(RequirementMissing) as missing:
        engine.verify_second_factor(request, interaction, kinds["pin"], {"pin": "2468"})
    assert missing.value.gate == "identify"


def test_mfa_off_ignores_the_users_second_factor(user, kinds, monkeypatch):
    enrol_pin(kinds, user)
    monkeypatch.setattr("experience.policy.resolve", lambda client_id: Policy(mfa=MfaPolicy(policy="off")))
    request = browser_request()
    interaction = engine.start(request)
    completed = engine.sign_in(request, interaction, Authenticator.objects.get(name="password"), password_data())
    assert completed.redirect_to == "/"


def test_required_mfa_without_a_factor_asks_for_enrolment_never_only_email(user, kinds, monkeypatch):
    policy = Policy(mfa=MfaPolicy(policy="required", factors=("test-pin", "email_code")))
    monkeypatch.setattr("experience.policy.resolve", lambda client_id: policy)
    request = browser_request()
    interaction = engine.start(request)
    with pytest.raises(RequirementMissing) as missing:
        engine.sign_in(request, interaction, Authenticator.objects.get(name="password"), password_data())
    assert (missing.value.gate, missing.value.data["methods"]) == ("mfa_enrolment_required", ["test-pin"])
    interaction.refresh_from_db()
    assert interaction.state["user_id"] == str(user.pk)  # the first factor is kept for the next step


def test_sign_up_needs_a_verified_identifier_then_the_profile(db):
    request = browser_request()
    interaction = engine.start(request, Interaction.SIGN_UP)
    assert gate_of(request, interaction)[0] == "identify"
    interaction.state["profile"] = {"verified": True, "email": "new@example.com"}
    with pytest.raises(RequirementMissing) as missing:
        engine.submit(request, interaction)
    assert missing.value.gate == "profile_incomplete"
    assert missing.value.data["missing"] == ["email_verified", "password"]


def test_a_requirement_renders_in_specs_shape(user):
    request = browser_request()
    interaction = engine.start(request)
    with pytest.raises(RequirementMissing) as missing:
        engine.submit(request, interaction)
    response = errors.as_json(missing.value)
    assert response.status_code == 400
    body = json.loads(response.content)
    assert list(body) == ["requirement"]
    assert body["requirement"]["code"] == "identify" and body["requirement"]["message"]


def test_submit_finishes_an_interaction_once(user):
    request = browser_request()
    interaction = engine.start(request)
    engine.verify(request, interaction, Authenticator.objects.get(name="password"), password_data())
    engine.submit(request, interaction)
    with pytest.raises(engine.InteractionError) as again:
        engine.submit(browser_request(), interaction)
    assert (again.value.kind, again.value.code, again.value.status) == ("interaction", "completed", 410)


def test_the_policy_is_resolved_once_per_request(db, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr("experience.policy.resolve", lambda client_id: calls.append(client_id) or Policy(client_id))
    request = browser_request()
    assert policy_for("app", request) is policy_for("app", request)
    assert calls == ["app"]


# -- completion strategies ------------------------------------------------------------------------------
def test_an_application_token_completion_issues_tokens_that_refresh_and_introspect(client, user, confidential_app):
    request = browser_request()
    interaction = engine.start(request, client_id=confidential_app.client_id)
    engine.verify(request, interaction, Authenticator.objects.get(name="password"), password_data())
    scopes = ("openid", "email")
    completed = engine.submit(request, interaction, ApplicationToken(confidential_app.application, scopes))
    token = completed.token
    assert token is not None and "_auth_user_id" not in request.session  # no browser session
    assert {"access_token", "refresh_token", "id_token", "expires_in", "token_type", "scope"} <= set(token)
    claims = jwt_payload(token["id_token"])
    assert claims["aud"] == confidential_app.client_id and claims["amr"] == ["pwd"] and "at_hash" in claims
    assert client.get("/oauth/userinfo", HTTP_AUTHORIZATION=f"Bearer {token['access_token']}").json()["email"]
    assert introspect(client, confidential_app, token["refresh_token"]).json()["active"] is True
    refreshed = refresh(client, confidential_app, token["refresh_token"])
    assert refreshed.status_code == 200, refreshed.content
    assert jwt_payload(refreshed.json()["id_token"])["auth_time"] == claims["auth_time"]
    replay = refresh(client, confidential_app, token["refresh_token"])
    assert replay.json()["error"] == "invalid_grant"  # the family rotates and dies on replay


# -- the code kind ------------------------------------------------------------------------------------------
def test_a_code_is_sent_checked_once_and_identifies(user, kinds):
    request = browser_request()
    interaction = engine.start(request)
    sent = engine.send_code(request, interaction, kinds["code"], {"username": "Alice"})
    assert (sent.timeout, sent.resend_after) == (600, 60)
    destination, code = OUTBOX[-1]
    assert destination == "alice" and len(code) == 6 and code.isdigit()
    assert code not in OneTimeCode.objects.get().digest  # stored as an HMAC
    engine.verify(request, interaction, kinds["code"], {"code_id": sent.code_id, "code": code})
    assert interaction.state["user_id"] == str(user.pk)
    with pytest.raises(EngineError) as reused:
        engine.verify(request, engine.start(request), kinds["code"], {"code_id": sent.code_id, "code": code})
    assert reused.value.code == "invalid_code"


def test_five_wrong_codes_spend_the_code(user, kinds):
    request = browser_request()
    interaction = engine.start(request)
    sent = engine.send_code(request, interaction, kinds["code"], {"username": "alice"})
    code = OUTBOX[-1][1]
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    answers = []
    for _ in range(5):
        with pytest.raises(EngineError) as failure:
            engine.verify(request, interaction, kinds["code"], {"code_id": sent.code_id, "code": wrong})
        answers.append(failure.value.code)
    assert answers == ["invalid_code"] * 4 + ["attempts_exceeded"]
    with pytest.raises(EngineError) as right_too_late:
        engine.verify(request, interaction, kinds["code"], {"code_id": sent.code_id, "code": code})
    assert right_too_late.value.code == "attempts_exceeded"


def test_a_code_belongs_to_its_interaction(user, kinds):
    request = browser_request()
    sent = engine.send_code(request, engine.start(request), kinds["code"], {"username": "alice"})
    with pytest.raises(EngineError) as other:
        engine.verify(request, engine.start(request), kinds["code"], {"code_id": sent.code_id, "code": OUTBOX[-1][1]})
    assert other.value.code == "invalid_code"


def test_an_expired_code_is_refused(user, kinds):
    request = browser_request()
    interaction = engine.start(request)
    sent = engine.send_code(request, interaction, kinds["code"], {"username": "alice"})
    OneTimeCode.objects.update(expires_at="2000-01-01T00:00:00Z")
    with pytest.raises(EngineError) as expired:
        engine.verify(request, interaction, kinds["code"], {"code_id": sent.code_id, "code": OUTBOX[-1][1]})
    assert expired.value.code == "code_expired"


def test_resending_waits_for_the_cool_down_with_retry_after(user, kinds):
    request = browser_request()
    interaction = engine.start(request)
    engine.send_code(request, interaction, kinds["code"], {"username": "alice"})
    with pytest.raises(EngineError) as again:
        engine.send_code(request, interaction, kinds["code"], {"username": "ALICE"})
    response = errors.as_json(again.value)
    assert response.status_code == 429 and 0 < int(response["Retry-After"]) <= 60
    assert json.loads(response.content)["rate_limited"]["code"] == "too_many_requests"
    assert len(OUTBOX) == 1


def test_an_unknown_address_gets_the_same_answer_and_nothing_is_sent(db, kinds):
    request = browser_request()
    sent = engine.send_code(request, engine.start(request), kinds["code"], {"username": "nobody"})
    assert (sent.timeout, sent.resend_after, len(sent.code_id)) == (600, 60, 32)
    assert OUTBOX == []


@pytest.mark.django_db(transaction=True)
def test_parallel_checks_of_one_code_succeed_once(django_user_model, password_authenticator):
    registry.register("test-code", InboxCodeAuth, sign_in_form=CodeForm, replace=True)
    try:
        django_user_model.objects.create_user("alice", "alice@example.com", PASSWORD)
        authenticator = Authenticator.objects.create(name="inbox", auth_type="test-code", title="Code")
        auth = authenticator.get_auth(None, binding="one-interaction")
        OUTBOX.clear()
        sent = auth.send_code({"username": "alice"})
        code = OUTBOX[-1][1]
        results: list[str] = []
        barrier = threading.Barrier(8)

        def check() -> None:
            try:
                barrier.wait()
                results.append(authenticator.get_auth(None, binding="one-interaction").check_code(sent.code_id, code))
            except AuthError as error:
                results.append(error.code)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=check) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results) == ["alice"] + ["invalid_code"] * 7
    finally:
        registry.unregister("test-code")


# -- the redirect kind ----------------------------------------------------------------------------------------
def test_a_redirect_type_checks_its_state_on_the_way_back(user, kinds):
    auth = kinds["upstream"].get_auth(None)
    url, pending = auth.begin("https://id.example.com/auth/up/callback")
    assert f"state={pending['state']}" in url
    with pytest.raises(AuthError) as forged:
        auth.finish({"state": "forged", "who": "alice"}, pending)
    assert forged.value.code == "invalid_state"
    with pytest.raises(AuthError):
        auth.finish({"state": pending["state"], "who": "alice"}, None)  # nothing pending: a replay
    assert auth.finish({"state": pending["state"], "who": "alice"}, pending) == user


def test_a_second_factor_type_never_identifies_on_its_own(user, kinds):
    request = browser_request()
    with pytest.raises(EngineError) as refused:
        engine.verify(request, engine.start(request), kinds["pin"], {"pin": "2468"})
    assert refused.value.code == "authenticator"


def test_the_registry_tells_each_kind_by_its_class(kinds):
    assert [registry.get(name).kind for name in ("password", "test-code", "test-upstream", "test-pin")] == [
        "form", "code", "redirect", "second_factor"]


# -- errors as values ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("code", "kind", "status"), [
    ("invalid_credentials", "key", 400), ("invalid_client", "key", 401), ("captcha_missing", "captcha_answer", 400),
    ("sso_required", "sso", 400), ("headless_not_allowed", "forbidden", 403), ("not_found", "not_found", 404),
    ("interaction_not_found", "interaction", 404), ("interaction_expired", "interaction", 410),
    ("too_many_requests", "rate_limited", 429), ("invalid", "validation", 400), ("identify", "requirement", 400),
])
def test_each_code_has_its_kind_and_status(code, kind, status):
    error = EngineError(code)
    assert (error.kind, error.status) == (kind, status)
    assert list(error.body()) == [kind] and error.body()[kind]["message"]


def test_a_validation_error_lands_on_the_form_fields():
    class ProfileForm(forms.Form):
        password = forms.CharField()

    form = ProfileForm(data={"password": "x"})
    assert form.is_valid()
    errors.add_to_form(form, EngineError("invalid", fields={"password": ["Too short."]}))
    assert form.errors == {"password": ["Too short."]}
