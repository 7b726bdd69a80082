"""Sign-up, as a new user meets it on the hosted pages and as every face drives the engine: the
address verified by code before the account exists, the password policy stated before typing, the
account created at submit with its address verified, sign-up switched off, no enumeration."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django import forms
from django.contrib.auth import get_user_model
from django.urls import reverse

from authenticators.base import AuthError, CodeAuth
from authenticators.models import Authenticator
from authenticators.registry import registry
from experience import errors
from experience import interaction as engine
from experience.errors import EngineError
from experience.gates import RequirementMissing
from experience.models import AuditEvent, Interaction
from experience.passwords import describe_rules
from experience.policy import PasswordPolicy, Policy, SignUpPolicy
from identity.identifiers import PHONE, find_user
from tests.helpers import (
    HUGE,
    NEW_PASSWORD,
    NUL,
    PASSWORD,
    UNREADABLE_FORMS,
    authorize_params,
    browser_request,
    code_in_mail,
    form_errors,
    jwt_payload,
    pkce_pair,
    query_of,
    run_together,
    sign_in_on_page,
    sign_in_url_from,
    userinfo,
)

pytestmark = pytest.mark.django_db


def use_policy(monkeypatch, policy: Policy) -> Policy:
    monkeypatch.setattr("experience.policy.resolve", lambda client_id: policy)
    return policy


def uid_of(url: str) -> str:
    found = re.search(r"/sign-in/([^/]+)/", url)
    assert found, url
    return found.group(1)


def sign_up_page(flow, app, params=None):
    response = flow.authorize(params or authorize_params(app))
    return reverse("experience:sign-up", args=[uid_of(sign_in_url_from(response))])


def verified_sign_up(request, mail_code, mailoutbox, address="new@example.com"):
    """An engine-level sign-up whose address is verified: the interaction."""
    interaction = engine.start(request, Interaction.SIGN_UP)
    sent = engine.send_code(request, interaction, mail_code, {"email": address})
    engine.verify(request, interaction, mail_code, {"code_id": sent.code_id, "code": code_in_mail(mailoutbox[-1])})
    return interaction


# -- the whole story on the hosted pages ---------------------------------------------------------------------
def test_a_new_user_signs_up_with_a_verified_email_and_the_client_gets_email_verified(
        flow, confidential_app, password_authenticator, mail_code, mailoutbox):
    verifier, challenge = pkce_pair()
    params = authorize_params(confidential_app, challenge)
    sign_in = sign_in_url_from(flow.authorize(params))
    sign_up = reverse("experience:sign-up", args=[uid_of(sign_in)])
    assert f'<a href="{sign_up}">Create an account</a>' in flow.client.get(sign_in).content.decode()

    page = flow.client.get(sign_up).content.decode()
    assert 'autocomplete="email"' in page and '<label for="id_email">' in page
    sent = flow.client.post(sign_up, {"authenticator": "mail", "email": "New.Person@Example.com", "action": "send"})
    assert (sent.status_code, sent["Location"]) == (303, sign_up)
    assert mailoutbox[-1].to == ["new.person@example.com"]
    assert get_user_model().objects.count() == 0  # no account before the address is verified

    code_page = flow.client.get(sign_up).content.decode()
    assert 'autocomplete="one-time-code"' in code_page and "Resend code" in code_page
    verified = flow.client.post(sign_up, {"action": "verify", "code": code_in_mail(mailoutbox[-1])})
    profile = reverse("experience:profile", args=[uid_of(sign_in)])
    assert (verified.status_code, verified["Location"]) == (303, profile)
    assert get_user_model().objects.count() == 0

    form = flow.client.get(profile).content.decode()
    rules = describe_rules(Policy())
    assert 'autocomplete="new-password"' in form
    assert form.index(rules) < form.index('type="password"')  # the rules come before the input
    weak = flow.client.post(profile, {"password": "password1"})
    assert weak.status_code == 400 and form_errors(weak.content.decode()) == ["New password: This password is too common."]

    done = flow.client.post(profile, {"password": NEW_PASSWORD, "name": "New Person"})
    assert done.status_code == 303
    redirect = flow.client.get(done["Location"])
    assert redirect.status_code == 302
    code = query_of(redirect["Location"])["code"]
    token = flow.token(confidential_app, code, params, code_verifier=verifier).json()
    claims = jwt_payload(token["id_token"])
    assert claims["email"] == "new.person@example.com" and claims["email_verified"] is True
    assert claims["amr"] == ["otp"]
    info = userinfo(flow.client, token["access_token"]).json()
    assert (info["email"], info["email_verified"], info["name"]) == ("new.person@example.com", True, "New Person")

    user = get_user_model().objects.get()
    assert user.check_password(NEW_PASSWORD) and user.portcullis_profile.email_verified
    finished = Interaction.objects.get()
    assert "password_hash" not in json.dumps(finished.state)  # no password hash left behind
    assert AuditEvent.objects.filter(kind=AuditEvent.SIGN_UP, user=user).exists()
    assert NEW_PASSWORD not in json.dumps(list(AuditEvent.objects.values()), default=str)


def test_the_sign_up_code_goes_to_a_new_address_and_the_answer_is_the_one_a_taken_address_gets(
        flow, confidential_app, user, mail_code, mailoutbox):
    sign_up = sign_up_page(flow, confidential_app)
    flow.client.get(sign_up)
    answers = []
    for address in ("nobody@example.com", "alice@example.com"):
        response = flow.client.post(sign_up, {"authenticator": "mail", "email": address, "action": "send"})
        cookies = sorted((name, {k: v for k, v in morsel.items() if v and k != "expires"}) for name, morsel in response.cookies.items())
        answers.append((response.status_code, response.get("Location"), response.content, cookies))
    assert answers[0] == answers[1]
    assert answers[0][0] == 303 and "sessionid" in [name for name, _ in answers[0][3]]
    assert [m.to for m in mailoutbox] == [["nobody@example.com"], ["Alice@example.com"]]  # the account's own spelling


def test_an_address_with_an_account_is_told_so_only_after_its_code_proved_it(
        flow, confidential_app, user, mail_code, mailoutbox):
    sign_up = sign_up_page(flow, confidential_app)
    flow.client.post(sign_up, {"authenticator": "mail", "email": "alice@example.com", "action": "send"})
    wrong = flow.client.post(sign_up, {"action": "verify", "code": f"{(int(code_in_mail(mailoutbox[-1])) + 1) % 10**6:06d}"})
    assert form_errors(wrong.content.decode()) == ["The code is incorrect."]
    told = flow.client.post(sign_up, {"action": "verify", "code": code_in_mail(mailoutbox[-1])})
    assert told.status_code == 400
    assert form_errors(told.content.decode()) == ["An account with this e-mail exists. Sign in to it first."]
    assert "Sign in instead" in told.content.decode()
    assert get_user_model().objects.count() == 1
    assert not Interaction.objects.get().state.get("profile")


# -- the engine, as every face drives it ------------------------------------------------------------------------
def test_the_engine_creates_the_account_at_submit_with_the_verified_address(db, mail_code, mailoutbox):
    request = browser_request()
    interaction = verified_sign_up(request, mail_code, mailoutbox)
    assert interaction.state["profile"] == {"email": "new@example.com", "email_verified": True, "verified": True}
    assert engine.describe(request, interaction)["next_step"] == "profile_incomplete"
    engine.set_profile(request, interaction, {"password": NEW_PASSWORD})
    assert get_user_model().objects.count() == 0
    assert engine.submit(request, interaction).redirect_to == "/"
    user = get_user_model().objects.get()
    assert (user.email, user.portcullis_profile.email_verified) == ("new@example.com", True)
    assert user.check_password(NEW_PASSWORD)
    assert request.session["_auth_user_id"] == str(user.pk)


@pytest.mark.parametrize(("password", "message"), [
    ("short", "This password is too short. It must contain at least 8 characters."),
    ("password123", "This password is too common."),
    ("newperson77", "The password is too similar to the e-mail address."),
    ("x" * 4097, "Use at most 4096 characters."),
])
def test_a_weak_common_or_similar_password_is_refused_in_the_validation_shape(db, mail_code, mailoutbox, password, message):
    request = browser_request()
    interaction = verified_sign_up(request, mail_code, mailoutbox, "newperson77@example.com")
    before = dict(interaction.state)
    with pytest.raises(EngineError) as refused:
        engine.set_profile(request, interaction, {"password": password})
    response = errors.as_json(refused.value)
    assert response.status_code == 400
    assert json.loads(response.content) == {"validation": {
        "code": "invalid", "message": "Some of the values are not valid.", "fields": {"password": [message]}}}
    interaction.refresh_from_db()
    assert interaction.state == before


def test_a_long_passphrase_with_spaces_and_no_composition_rules_is_accepted(db, mail_code, mailoutbox):
    request = browser_request()
    interaction = verified_sign_up(request, mail_code, mailoutbox)
    engine.set_profile(request, interaction, {"password": "  " + "horse " * 600})  # 3602 characters, kept as typed
    engine.submit(request, interaction)
    assert get_user_model().objects.get().check_password("  " + "horse " * 600)


def test_the_policy_configures_the_rules_and_their_sentence(db, monkeypatch, mail_code, mailoutbox):
    policy = use_policy(monkeypatch, Policy(password=PasswordPolicy(min_length=15, blocklist=False, similarity=False)))
    assert describe_rules(policy) == "Use at least 15 characters; spaces and any symbols are welcome."
    request = browser_request()
    interaction = verified_sign_up(request, mail_code, mailoutbox)
    with pytest.raises(EngineError) as short:
        engine.set_profile(request, interaction, {"password": "fourteen chars"})
    assert short.value.data["fields"]["password"] == [
        "This password is too short. It must contain at least 15 characters."]
    engine.set_profile(request, interaction, {"password": "password1234567"})  # no blocklist in this policy


def test_a_taken_username_is_refused_and_nothing_is_recorded(user, monkeypatch, mail_code, mailoutbox):
    use_policy(monkeypatch, Policy(sign_up=SignUpPolicy(identifiers=("email", "username"))))
    request = browser_request()
    interaction = verified_sign_up(request, mail_code, mailoutbox)
    before = dict(interaction.state)
    with pytest.raises(EngineError) as taken:
        engine.set_profile(request, interaction, {"username": "ALICE", "password": NEW_PASSWORD})
    assert (taken.value.kind, taken.value.data["fields"]) == (
        "validation", {"username": ["This username is already used by another account."]})
    interaction.refresh_from_db()
    assert interaction.state == before
    engine.set_profile(request, interaction, {"password": NEW_PASSWORD})
    with pytest.raises(RequirementMissing) as missing:
        engine.submit(request, interaction)
    assert (missing.value.gate, missing.value.data["missing"]) == ("profile_incomplete", ["username"])
    engine.set_profile(request, interaction, {"username": "newbie"})
    engine.submit(request, interaction)
    assert get_user_model().objects.filter(username="newbie", email="new@example.com").exists()


def test_a_username_taken_between_profile_and_submit_rolls_the_submit_back(
        db, django_user_model, monkeypatch, mail_code, mailoutbox):
    use_policy(monkeypatch, Policy(sign_up=SignUpPolicy(identifiers=("email", "username"))))
    request = browser_request()
    interaction = verified_sign_up(request, mail_code, mailoutbox)
    engine.set_profile(request, interaction, {"username": "newbie", "password": NEW_PASSWORD})
    django_user_model.objects.create_user("Newbie", "other@example.com", PASSWORD)
    with pytest.raises(EngineError) as taken:
        engine.submit(request, interaction)
    assert taken.value.data["fields"] == {"username": ["This username is already used by another account."]}
    interaction.refresh_from_db()
    assert interaction.completed_at is None and "password_hash" in interaction.state["profile"]
    assert django_user_model.objects.count() == 1


def test_a_sign_up_by_username_alone_needs_no_code(db, monkeypatch):
    use_policy(monkeypatch, Policy(sign_up=SignUpPolicy(identifiers=("username",))))
    request = browser_request()
    interaction = engine.start(request, Interaction.SIGN_UP)
    engine.set_profile(request, interaction, {"username": "solo", "password": NEW_PASSWORD})
    engine.submit(request, interaction)
    assert get_user_model().objects.get().username == "solo"
    assert request.session["portcullis_auth"]["amr"] == ["pwd"]


def test_an_address_is_only_recorded_through_its_code_when_the_policy_verifies(db, mail_code, mailoutbox):
    request = browser_request()
    interaction = verified_sign_up(request, mail_code, mailoutbox)
    with pytest.raises(EngineError) as refused:
        engine.set_profile(request, interaction, {"email": "someone.else@example.com", "password": NEW_PASSWORD})
    assert refused.value.data["fields"] == {"email": ["Confirm this address with a code first."]}
    assert interaction.state["profile"]["email"] == "new@example.com"


# -- out of order ------------------------------------------------------------------------------------------------
def test_a_profile_before_the_address_is_verified_answers_the_requirement_and_changes_nothing(
        db, password_authenticator, mail_code):
    request = browser_request()
    interaction = engine.start(request, Interaction.SIGN_UP)
    before = dict(interaction.state)
    with pytest.raises(RequirementMissing) as missing:
        engine.set_profile(request, interaction, {"password": NEW_PASSWORD})
    assert (missing.value.gate, missing.value.data["methods"]) == ("identify", ["email-code"])  # a code, not a password
    assert engine.describe(request, interaction)["methods"] == ["email-code"]
    assert json.loads(errors.as_json(missing.value).content)["requirement"]["code"] == "identify"
    interaction.refresh_from_db()
    assert interaction.state == before


def test_the_profile_page_before_verification_sends_back_to_the_address(flow, confidential_app, mail_code):
    sign_up = sign_up_page(flow, confidential_app)
    uid = uid_of(sign_up)
    flow.client.post(sign_up, {"authenticator": "mail", "email": "new@example.com", "action": "send"})
    profile = reverse("experience:profile", args=[uid])
    assert flow.client.get(profile)["Location"] == sign_up
    posted = flow.client.post(profile, {"password": NEW_PASSWORD})
    assert (posted.status_code, posted["Location"]) == (303, sign_up)
    assert "profile" not in Interaction.objects.get(uid=uid).state
    bad = flow.client.post(sign_up, {"action": "verify", "code": "not a code at all"})
    assert bad.status_code == 400


def test_a_profile_in_a_sign_in_is_not_expected(user):
    request = browser_request()
    interaction = engine.start(request)
    with pytest.raises(EngineError) as refused:
        engine.set_profile(request, interaction, {"password": NEW_PASSWORD})
    assert (refused.value.kind, refused.value.code, refused.value.status) == ("validation", "invalid", 400)


# -- events and sign-up switched off -------------------------------------------------------------------------------
def test_switching_the_event_starts_over_but_keeps_a_demanded_captcha(user, mail_code, mailoutbox):
    request = browser_request()
    interaction = verified_sign_up(request, mail_code, mailoutbox)
    interaction.state["captcha"] = {"required": True, "passed": False}
    engine.set_event(request, interaction, Interaction.SIGN_IN)
    interaction.refresh_from_db()
    assert interaction.event == "sign_in"
    assert interaction.state["verifications"] == [] and "profile" not in interaction.state
    assert interaction.state["captcha"] == {"required": True, "passed": False}
    with pytest.raises(EngineError) as unknown:
        engine.set_event(request, interaction, "take_over")
    assert (unknown.value.kind, list(unknown.value.data["fields"])) == ("validation", ["event"])


def test_sign_up_switched_off_is_refused_everywhere(flow, confidential_app, password_authenticator, mail_code,
                                                    mailoutbox, monkeypatch):
    use_policy(monkeypatch, Policy(sign_up=SignUpPolicy(enabled=False)))
    request = browser_request()
    with pytest.raises(EngineError) as at_start:
        engine.start(request, Interaction.SIGN_UP)
    interaction = engine.start(request)
    with pytest.raises(EngineError) as switched:
        engine.set_event(request, interaction, Interaction.SIGN_UP)
    for error in (at_start.value, switched.value):
        assert json.loads(errors.as_json(error).content) == {"forbidden": {
            "code": "sign_up_disabled", "message": "New accounts cannot be created here."}}
        assert error.status == 403
    interaction.refresh_from_db()
    assert interaction.event == "sign_in"

    sign_in = sign_in_url_from(flow.authorize(authorize_params(confidential_app)))
    assert "Create an account" not in flow.client.get(sign_in).content.decode()
    sign_up = reverse("experience:sign-up", args=[uid_of(sign_in)])
    assert flow.client.get(sign_up).status_code == 403
    sent = flow.client.post(sign_up, {"authenticator": "mail", "email": "new@example.com", "action": "send"})
    assert sent.status_code == 403 and mailoutbox == []


def test_a_sign_up_switched_off_midway_creates_no_account(db, monkeypatch, mail_code, mailoutbox):
    request = browser_request()
    interaction = verified_sign_up(request, mail_code, mailoutbox)
    engine.set_profile(request, interaction, {"password": NEW_PASSWORD})
    use_policy(monkeypatch, Policy(sign_up=SignUpPolicy(enabled=False)))
    with pytest.raises(EngineError) as refused:
        engine.submit(browser_request(request.session), interaction)
    assert refused.value.code == "sign_up_disabled"
    assert get_user_model().objects.count() == 0


# -- a phone number, verified by an SMS-like code type -----------------------------------------------------------
TEXTS: list[tuple[str, str]] = []


class TextCodeAuth(CodeAuth):
    """A code type that 'texts' its code to an E.164 number (kept in TEXTS)."""

    def destination(self, data: dict[str, Any]) -> str:
        number = str(data.get("phone_number") or "").replace(" ", "")
        if not number.startswith("+"):
            raise AuthError("invalid_input")
        return number

    def user_for(self, destination: str) -> Any | None:
        return find_user(destination, [PHONE])

    def deliver(self, destination: str, code: str, *, user: Any, timeout: int) -> None:
        TEXTS.append((destination, code))


class TextCodeForm(forms.Form):
    phone_number = forms.CharField()


@pytest.fixture
def text_code(db: Any) -> Any:
    registry.register("test-text-code", TextCodeAuth, sign_in_form=TextCodeForm, replace=True)
    TEXTS.clear()
    yield Authenticator.objects.create(name="text", auth_type="test-text-code", title="Text", sort_order=6)
    registry.unregister("test-text-code")


def test_a_sign_up_by_phone_verifies_the_number_and_the_account_has_it_verified(db, monkeypatch, text_code):
    use_policy(monkeypatch, Policy(sign_up=SignUpPolicy(identifiers=("phone",))))
    request = browser_request()
    interaction = engine.start(request, Interaction.SIGN_UP)
    sent = engine.send_code(request, interaction, text_code, {"phone_number": "+1 555 000 1111"})
    assert TEXTS[-1][0] == "+15550001111"
    engine.verify(request, interaction, text_code, {"code_id": sent.code_id, "code": TEXTS[-1][1]})
    assert interaction.state["profile"] == {"phone": "+15550001111", "phone_verified": True, "verified": True}
    engine.set_profile(request, interaction, {"password": NEW_PASSWORD})
    engine.submit(request, interaction)
    profile = get_user_model().objects.get().portcullis_profile
    assert (profile.phone_number, profile.phone_number_verified, profile.email_verified) == ("+15550001111", True, False)


def test_a_phone_with_an_account_is_told_so_after_its_code(user, monkeypatch, text_code):
    use_policy(monkeypatch, Policy(sign_up=SignUpPolicy(identifiers=("phone",))))
    request = browser_request()
    interaction = engine.start(request, Interaction.SIGN_UP)
    sent = engine.send_code(request, interaction, text_code, {"phone_number": "+15551234567"})
    with pytest.raises(EngineError) as exists:
        engine.verify(request, interaction, text_code, {"code_id": sent.code_id, "code": TEXTS[-1][1]})
    assert (exists.value.code, str(exists.value.message)) == (
        "account_exists", "An account with this phone number exists. Sign in to it first.")


def test_a_sign_up_never_signs_in_with_a_password(user):
    request = browser_request()
    interaction = engine.start(request, Interaction.SIGN_UP)
    with pytest.raises(EngineError) as refused:
        engine.verify(request, interaction, Authenticator.objects.get(name="password"),
                      {"identifier": "alice", "password": PASSWORD})
    assert refused.value.code == "authenticator" and interaction.state.get("user_id") is None


def test_back_on_the_sign_in_page_the_password_signs_in(flow, confidential_app, user, mail_code):
    sign_up = sign_up_page(flow, confidential_app)
    flow.client.post(sign_up, {"authenticator": "mail", "email": "new@example.com", "action": "send"})
    assert Interaction.objects.get().event == "sign_up"
    signed_in = sign_in_on_page(flow.client, reverse("experience:sign-in", args=[uid_of(sign_up)]))
    assert signed_in.status_code == 303 and "/oauth/authorize" in signed_in["Location"]


# -- bad input on the pages --------------------------------------------------------------------------------------------
GARBAGE = [
    {"action": "send", "authenticator": "mail", "email": NUL},
    {"action": "send", "authenticator": NUL, "email": HUGE},
    {"action": ["send", "verify"], "email": ["a@example.com", "b@example.com"]},
    {"action": "verify", "code": NUL},
    {"action": "verify", "code": HUGE},
    {"action": "resend"},
    {"action": "continue"},
    {"action": NUL},
    {"username": NUL, "password": NUL, "name": HUGE},
    {"password": HUGE},
    {"password": ["a", "b"]},
    {},
]


@pytest.mark.parametrize("page", ["sign-up", "forgot-password", "profile", "new-password"])
def test_garbage_on_the_pages_is_a_clear_4xx_never_a_500(flow, confidential_app, user, mail_code, mailoutbox, page):
    flow.client.raise_request_exception = False
    sign_up = sign_up_page(flow, confidential_app)
    uid = uid_of(sign_up)
    url = reverse(f"experience:{page}", args=[uid])
    for stage in ("fresh", "code sent", "verified"):
        if stage == "code sent":
            flow.client.post(sign_up, {"authenticator": "mail", "email": "new@example.com", "action": "send"})
        if stage == "verified":
            flow.client.post(sign_up, {"action": "verify", "code": code_in_mail(mailoutbox[-1])})
        for data in GARBAGE:
            response = flow.client.post(url, data)
            assert response.status_code < 500, (stage, data, response.status_code)
            assert response["X-Frame-Options"] == "DENY"
        for content_type, body in UNREADABLE_FORMS.values():
            assert flow.client.generic("POST", url, body, content_type=content_type).status_code == 400
        assert flow.client.get(url, {"authenticator": NUL, "change": HUGE}).status_code < 500
    for unknown in ("unknown-uid", "%00", "u" * 5000):
        assert flow.client.get(f"/sign-in/{unknown}/{page.replace('sign-up', 'create-account')}/").status_code in (400, 404)


def test_resending_during_the_cool_down_says_when_to_come_back(flow, confidential_app, mail_code, mailoutbox):
    sign_up = sign_up_page(flow, confidential_app)
    flow.client.post(sign_up, {"authenticator": "mail", "email": "new@example.com", "action": "send"})
    again = flow.client.post(sign_up, {"action": "resend"})
    assert again.status_code == 429 and 0 < int(again["Retry-After"]) <= 60
    wait = int(again["Retry-After"])
    assert form_errors(again.content.decode()) in ([f"Wait {wait} s before asking for a new code."],
                                                   [f"Wait {wait - 1} s before asking for a new code."])
    assert len(mailoutbox) == 1


def test_the_new_password_page_is_not_part_of_a_sign_up(flow, confidential_app, mail_code, mailoutbox):
    sign_up = sign_up_page(flow, confidential_app)
    flow.client.post(sign_up, {"authenticator": "mail", "email": "new@example.com", "action": "send"})
    flow.client.post(sign_up, {"action": "verify", "code": code_in_mail(mailoutbox[-1])})
    new_password = reverse("experience:new-password", args=[uid_of(sign_up)])
    forgot = reverse("experience:forgot-password", args=[uid_of(sign_up)])
    assert flow.client.post(new_password, {"password": NEW_PASSWORD})["Location"] == forgot
    assert "password_set" not in Interaction.objects.get().state["profile"]


# -- races (meant for PostgreSQL; they also run on SQLite) -------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_parallel_submits_of_one_sign_up_create_one_account(mail_code, mailoutbox):
    request = browser_request()
    interaction = verified_sign_up(request, mail_code, mailoutbox)
    engine.set_profile(request, interaction, {"password": NEW_PASSWORD})

    def submit(index: int) -> str:
        mine = browser_request(request.session)
        try:
            engine.submit(mine, Interaction.objects.get(uid=interaction.uid))
        except EngineError as error:
            return error.code
        return "created"

    results = run_together(5, submit)
    assert sorted(map(str, results)) == ["completed"] * 4 + ["created"], results
    assert get_user_model().objects.count() == 1
