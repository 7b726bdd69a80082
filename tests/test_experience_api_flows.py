"""Every flow of the sign-in experience through the Experience API, driven as a custom sign-in UI
drives it: a plain HTTP client (Django's test client with CSRF enforced, the ``X-CSRFToken``
header, JSON bodies), the built-in methods (codes read from the mail and SMS outboxes, TOTP codes
computed here, captcha answers read from the store as a person reads the picture). Each flow ends
with a code at the client's redirect URI exchanged for tokens whose claims are checked; the gates of
``submit`` are answered in their order; nothing in an answer tells whether an address has an account."""

from __future__ import annotations

import base64
import re
import time
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest
from captcha.models import CaptchaStore
from django.contrib.auth import get_user_model
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from authenticators.models import Authenticator, BackupCode
from authenticators.types import backup_code
from experience import risk
from experience.policy import MfaPolicy, SignUpPolicy
from identity.models import Profile
from tests import test_experience_api as shared
from tests.helpers import (
    NEW_PASSWORD,
    PASSWORD,
    Flow,
    error_of,
    jwt_payload,
    pkce_pair,
    refresh,
    tokens_for,
    totp_now,
)
from tests.test_experience_api import (
    API,
    Api,
    authorize_url,
    code_at_redirect_uri,
    error,
    exchange,
    mailed_code,
    other_than,
)

# The Experience API tests' fixtures: a CSRF-enforcing client, the built-in e-mail code, the policy.
api, email_code, policy = shared.api, shared.email_code, shared.policy

PHONE = "+14155552671"


@pytest.fixture
def sms_code(db: Any) -> Authenticator:
    """The built-in ``sms-code`` method, switched on (its row is made disabled: it needs a provider);
    its texts go to ``identity.delivery.outbox``."""
    Authenticator.objects.filter(name="sms-code").update(enabled=True)
    return Authenticator.objects.get(name="sms-code")


class Signing:
    """One sign-in through the API for ``app``: the authorization request it serves, its PKCE
    verifier, and the end of it (the code at the redirect URI, redeemed)."""

    def __init__(self, client: Api, app: Any, event: str = "sign_in") -> None:
        self.api, self.app = client, app
        self.verifier, challenge = pkce_pair()
        url, self.params = authorize_url(app, challenge)
        self.state = client.start(event, next_url=url)
        self.uid = self.state["id"]

    def step(self, name: str, body: Any = None) -> dict[str, Any]:
        self.state = self.api.step(self.uid, name, body)
        return self.state

    def post(self, name: str, body: Any = None) -> Any:
        return self.api.post(f"{API}{self.uid}/{name}", body)

    def requirement(self) -> str:
        """The code of the first gate not met, as submit answers it (and the state's ``next_step``)."""
        response = self.post("submit")
        assert response.status_code == 400, response.content
        code = error(response, 400, "requirement", response.json()["requirement"]["code"])["code"]
        assert self.api.get(f"{API}{self.uid}").json()["next_step"] == code  # the state says the same
        return code

    def claims(self) -> dict[str, Any]:
        """Submit, follow ``redirect_to`` to the client's redirect URI and redeem the code: the ID token's claims."""
        response = self.post("submit")
        assert response.status_code == 200, response.content
        code = code_at_redirect_uri(self.api.client, response.json()["redirect_to"], self.params)
        claims = jwt_payload(exchange(self.api.client, self.app, code, self.verifier)["id_token"])
        assert claims["nonce"] == self.params["nonce"] and claims["aud"] == self.app.client_id
        return claims


def fresh_api() -> Api:
    return Api(Client(enforce_csrf_checks=True))


def sms_in(outbox: list[Any]) -> str:
    found = re.search(r"\b(\d{6})\b", outbox[-1].body)
    assert found, outbox[-1].body
    return found.group(1)


def key_of(setup: dict[str, Any]) -> bytes:
    secret = setup["secret"]
    return base64.b32decode(secret + "=" * (-len(secret) % 8))


# -- first factors ------------------------------------------------------------------------------------------
def test_sms_code_sign_in_with_a_phone_number(api, confidential_app, user, email_code, sms_code, sms_outbox):
    profile = Profile.objects.get(user=user)
    profile.phone_number, profile.phone_number_verified = PHONE, False
    profile.save()  # a save: the sign-in identifiers follow it
    signing = Signing(api, confidential_app)
    assert signing.state["methods"] == ["password", "email-code", "sms-code"]

    sent = signing.api.step(signing.uid, "code", {"phone_number": "+1 (415) 555-2671"})
    assert (sent["timeout"], sent["resend_after"]) == (600, 60)
    assert [message.to for message in sms_outbox] == [PHONE]
    error(signing.post("code/verify", {"code_id": sent["code_id"], "code": other_than(sms_in(sms_outbox))}),
          400, "key", "invalid_code")
    state = signing.step("code/verify", {"code_id": sent["code_id"], "code": sms_in(sms_outbox)})
    assert state["identified"] is True and [v["method"] for v in state["verifications"]] == ["sms-code"]

    claims = signing.claims()
    assert claims["amr"] == ["otp", "sms"]
    assert claims["phone_number"] == PHONE and claims["phone_number_verified"] is True  # the code proved it


def test_a_malformed_phone_number_is_refused_and_nothing_is_sent(api, user, sms_code, sms_outbox):
    state = api.start()
    error(api.post(f"{API}{state['id']}/code", {"phone_number": "12"}), 400, "validation", "invalid")
    assert sms_outbox == []


# -- sign-up and forgot password -----------------------------------------------------------------------------
@pytest.mark.parametrize("identifiers", [("email",), ("email", "username")])
def test_sign_up_verifies_the_address_then_creates_the_account(api, confidential_app, email_code, mailoutbox,
                                                               policy, identifiers):
    policy(sign_up=SignUpPolicy(identifiers=identifiers))
    signing = Signing(api, confidential_app)
    response = api.put(f"{API}{signing.uid}/event", {"event": "sign_up"})
    assert response.status_code == 200, response.content
    state = response.json()
    assert (state["event"], state["next_step"], state["methods"]) == ("sign_up", "identify", ["email-code"])

    sent = signing.api.step(signing.uid, "code", {"email": "New.Person@Example.com"})
    assert mailoutbox[-1].to == ["new.person@example.com"]
    state = signing.step("code/verify", {"code_id": sent["code_id"], "code": mailed_code(mailoutbox)})
    assert state["identified"] is False and state["next_step"] == "profile_incomplete"  # no account yet
    missing = error(signing.post("submit"), 400, "requirement", "profile_incomplete")["missing"]
    assert missing == [*(["username"] if "username" in identifiers else []), "password"]
    assert not get_user_model().objects.exists()

    refused = error(signing.post("profile", {"password": "password1"}), 400, "validation", "invalid")
    assert refused["fields"] == {"password": ["This password is too common."]}
    values = {"password": NEW_PASSWORD, **({"username": "newperson"} if "username" in identifiers else {})}
    assert signing.step("profile", values)["next_step"] == "submit"
    assert not get_user_model().objects.exists()  # submit creates it

    claims = signing.claims()
    assert claims["email"] == "new.person@example.com" and claims["email_verified"] is True
    assert claims["amr"] == ["otp"]
    account = get_user_model().objects.get()
    assert account.check_password(NEW_PASSWORD) and account.portcullis_profile.email_verified
    if "username" in identifiers:
        assert claims["preferred_username"] == "newperson" == account.get_username()


def test_sign_up_of_an_address_with_an_account_is_told_only_after_its_code(api, user, email_code, mailoutbox):
    state = api.start("sign_up")
    sent = api.step(state["id"], "code", {"email": "alice@example.com"})
    error(api.post(f"{API}{state['id']}/code/verify", {"code_id": sent["code_id"], "code": other_than(mailed_code(mailoutbox))}),
          400, "key", "invalid_code")
    error(api.post(f"{API}{state['id']}/code/verify", {"code_id": sent["code_id"], "code": mailed_code(mailoutbox)}),
          400, "key", "account_exists")
    assert get_user_model().objects.count() == 1


def test_forgot_password_sets_the_new_password_and_ends_every_token(api, confidential_app, user, email_code,
                                                                      mailoutbox):
    elsewhere = Flow(Client())  # the user's other device, signed in before the reset
    old_tokens = tokens_for(elsewhere, confidential_app)

    signing = Signing(api, confidential_app, "forgot_password")
    assert (signing.state["next_step"], signing.state["methods"]) == ("identify", ["email-code"])
    sent = signing.api.step(signing.uid, "code", {"email": "ALICE@example.com"})
    assert mailoutbox[-1].to == ["Alice@example.com"]
    state = signing.step("code/verify", {"code_id": sent["code_id"], "code": mailed_code(mailoutbox)})
    assert state["identified"] is True and (state["next_step"], state["methods"]) == ("new_password_required", ["password"])
    assert signing.requirement() == "new_password_required"

    refused = error(signing.post("profile", {"password": "alice"}), 400, "validation", "invalid")
    assert list(refused["fields"]) == ["password"]
    user.refresh_from_db()
    assert user.check_password(PASSWORD)  # refused: nothing changed
    assert signing.step("profile", {"password": NEW_PASSWORD})["next_step"] == "submit"

    claims = signing.claims()
    assert claims["amr"] == ["otp"] and claims["email_verified"] is True
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD) and not user.check_password(PASSWORD)
    assert error_of(refresh(elsewhere.client, confidential_app, old_tokens["refresh_token"])) == "invalid_grant"

    later = fresh_api()  # the old password no longer signs in; the new one does
    state = later.start()
    error(later.post(f"{API}{state['id']}/password", {"identifier": "alice", "password": PASSWORD}),
          400, "key", "invalid_credentials")
    assert later.step(state["id"], "password", {"identifier": "alice", "password": NEW_PASSWORD})["identified"] is True


# -- second factors ---------------------------------------------------------------------------------------------
def after_password(client: Api, app: Any) -> Signing:
    signing = Signing(client, app)
    signing.step("password", {"identifier": "alice", "password": PASSWORD})
    return signing


def test_a_totp_code_computed_now_is_the_second_factor_and_is_accepted_once(api, confidential_app, totp_user):
    signing = after_password(api, confidential_app)
    assert (signing.state["next_step"], signing.state["methods"]) == ("second_factor_required", ["totp", "email_code"])
    code = totp_now()
    state = signing.step("totp", {"code": code})
    assert state["next_step"] == "submit" and [v["method"] for v in state["verifications"]] == ["password", "totp"]
    claims = signing.claims()
    assert claims["amr"] == ["mfa", "otp", "pwd"] and claims["acr"] == "urn:portcullis:acr:2fa"
    assert claims["email_verified"] is True

    replay = after_password(fresh_api(), confidential_app)  # the same code, in another sign-in
    error(replay.post("totp", {"code": code}), 400, "key", "invalid_code")
    assert replay.api.get(f"{API}{replay.uid}").json()["next_step"] == "second_factor_required"


def test_a_backup_code_signs_in_once(api, confidential_app, totp_user):
    codes = backup_code.replace_codes(totp_user)
    signing = after_password(api, confidential_app)
    assert signing.state["methods"] == ["totp", "backup_code", "email_code"]
    signing.step("backup-code", {"code": codes[0]})
    assert signing.claims()["amr"] == ["mfa", "otp", "pwd"]

    again = after_password(fresh_api(), confidential_app)
    error(again.post("backup-code", {"code": codes[0]}), 400, "key", "invalid_code")
    assert again.step("backup-code", {"code": codes[1]})["next_step"] == "submit"
    assert BackupCode.objects.filter(user=totp_user, used_at__isnull=False).count() == 2


def test_a_second_factor_code_by_email_is_checked_by_code_verify(api, confidential_app, totp_user, mailoutbox):
    early = Signing(fresh_api(), confidential_app)
    error(early.post("code", {"channel": "email"}), 400, "requirement", "identify")
    assert mailoutbox == []

    signing = after_password(api, confidential_app)
    sent = signing.api.step(signing.uid, "code", {"channel": "email"})
    assert (sent["timeout"], sent["resend_after"]) == (600, 60)
    assert [message.to for message in mailoutbox] == [["Alice@example.com"]]  # the user's own verified address
    code = mailed_code(mailoutbox)
    error(early.post("code/verify", {"code_id": sent["code_id"], "code": code}), 400, "key", "invalid_code")  # another interaction's
    error(signing.post("code/verify", {"code_id": sent["code_id"], "code": other_than(code)}), 400, "key", "invalid_code")
    state = signing.step("code/verify", {"code_id": sent["code_id"], "code": code})
    assert state["next_step"] == "submit"
    assert [v["method"] for v in state["verifications"]] == ["password", "email_code"]
    claims = signing.claims()
    assert claims["amr"] == ["mfa", "otp", "pwd"] and claims["email_verified"] is True


def test_mfa_enrolment_when_required_happens_inside_the_flow(api, confidential_app, user, second_factors, policy):
    policy(mfa=MfaPolicy(policy="required"))
    signing = after_password(api, confidential_app)
    assert (signing.state["next_step"], signing.state["methods"]) == ("mfa_enrolment_required", ["totp", "backup_code"])
    assert signing.requirement() == "mfa_enrolment_required"
    error(signing.post("mfa/backup-codes"), 400, "key", "enrolment_not_started")  # the app comes first
    error(signing.post("code", {"channel": "email"}), 403, "forbidden", "method_disabled")  # never the only factor

    setup = signing.api.step(signing.uid, "mfa/totp")
    assert set(setup) == {"secret", "otpauth_uri", "qr_svg"}
    assert setup["otpauth_uri"].startswith("otpauth://totp/") and setup["qr_svg"].startswith("<svg")
    key = key_of(setup)
    error(signing.post("mfa/totp/confirm", {"code": other_than(totp_now(key))}), 400, "key", "invalid_code")
    state = signing.step("mfa/totp/confirm", {"code": totp_now(key)})
    assert state["next_step"] == "submit"
    codes = signing.api.step(signing.uid, "mfa/backup-codes")["codes"]
    assert len(codes) == len(set(codes)) == 10

    claims = signing.claims()
    assert claims["amr"] == ["mfa", "otp", "pwd"]
    assert TOTPDevice.objects.filter(user=user, confirmed=True).count() == 1
    assert BackupCode.objects.filter(user=user, used_at__isnull=True).count() == 10

    later = after_password(fresh_api(), confidential_app)  # next time the new factors are asked for
    assert later.state["next_step"] == "second_factor_required"
    assert later.step("backup-code", {"code": codes[0]})["next_step"] == "submit"


# -- risk ----------------------------------------------------------------------------------------------------------
def test_a_captcha_after_three_failed_passwords(api, confidential_app, user):
    signing = Signing(api, confidential_app)
    for _ in range(3):
        error(signing.post("password", {"identifier": "alice", "password": "wrong"}), 400, "key", "invalid_credentials")
    assert signing.api.get(f"{API}{signing.uid}").json()["methods"] == ["captcha"]
    assert signing.requirement() == "captcha_required"

    right = {"identifier": "alice", "password": PASSWORD}
    challenge = error(signing.post("password", right), 400, "captcha_answer", "required")["captcha"]
    assert set(challenge) == {"id", "url"}
    assert urlsplit(challenge["url"]).path == f"/captcha/image/{challenge['id']}/"
    assert api.client.get(urlsplit(challenge["url"]).path).status_code == 200  # the picture

    wrong = error(signing.post("password", {**right, "captcha": {"id": challenge["id"], "answer": "nope"}}),
                  400, "captcha_answer", "invalid")["captcha"]
    assert wrong["id"] != challenge["id"] and not CaptchaStore.objects.filter(hashkey=challenge["id"]).exists()

    solved = {"id": wrong["id"], "answer": CaptchaStore.objects.get(hashkey=wrong["id"]).response}
    error(signing.post("password", {"identifier": "alice", "password": "wrong", "captcha": solved}),
          400, "key", "invalid_credentials")  # the captcha passed, the password did not
    reused = error(signing.post("password", {**right, "captcha": solved}), 400, "captcha_answer", "invalid")["captcha"]
    assert signing.api.get(f"{API}{signing.uid}").json()["identified"] is False

    answer = CaptchaStore.objects.get(hashkey=reused["id"]).response.upper()  # as typed from the picture
    state = signing.step("password", {**right, "captcha": {"id": reused["id"], "answer": answer}})
    assert state["identified"] is True and state["next_step"] == "submit"
    assert signing.claims()["amr"] == ["pwd"]


def test_the_31st_request_in_a_minute_to_one_endpoint_is_rate_limited(api, user, monkeypatch):
    now = [(time.time() // 60) * 60 + 1]  # the first second of a minute: every request falls in it
    monkeypatch.setattr(risk, "time", SimpleNamespace(time=lambda: now[0]))
    state = api.start()
    for _ in range(30):
        assert api.get(f"{API}{state['id']}").status_code == 200
    response = api.get(f"{API}{state['id']}")
    answer = error(response, 429, "rate_limited", "too_many_requests")
    assert answer["retry_after"] == 59 and response["Retry-After"] == "59"
    # another endpoint has its own count; the next minute starts over
    assert api.step(state["id"], "password", {"identifier": "alice", "password": PASSWORD})["identified"] is True
    now[0] += 60
    assert api.get(f"{API}{state['id']}").status_code == 200


# -- the gates of submit, answered in order ----------------------------------------------------------------------
def test_every_gate_of_submit_answered_in_order(api, confidential_app, totp_user, email_code, mailoutbox):
    """Forgot password with a captcha demanded and a second factor: captcha_required → identify →
    new_password_required → second_factor_required → submit."""
    signing = Signing(api, confidential_app)
    for _ in range(3):
        error(signing.post("password", {"identifier": "alice@example.com", "password": "wrong"}),
              400, "key", "invalid_credentials")
    assert api.put(f"{API}{signing.uid}/event", {"event": "forgot_password"}).status_code == 200  # the demand stays
    answered = [signing.requirement()]

    # captcha_required: the captcha travels with the step that names the account
    address = {"email": "alice@example.com"}
    challenge = error(signing.post("code", address), 400, "captcha_answer", "required")["captcha"]
    assert mailoutbox == []
    captcha = {"id": challenge["id"], "answer": CaptchaStore.objects.get(hashkey=challenge["id"]).response}
    sent = signing.api.step(signing.uid, "code", {**address, "captcha": captcha})
    answered.append(signing.requirement())

    # identify: the code
    signing.step("code/verify", {"code_id": sent["code_id"], "code": mailed_code(mailoutbox)})
    answered.append(signing.requirement())

    # new_password_required
    signing.step("profile", {"password": NEW_PASSWORD})
    answered.append(signing.requirement())
    assert signing.state["methods"] == ["totp", "email_code"]

    # second_factor_required
    assert signing.step("totp", {"code": totp_now()})["next_step"] == "submit"
    claims = signing.claims()
    answered.append("submit")

    assert answered == ["captcha_required", "identify", "new_password_required", "second_factor_required", "submit"]
    assert claims["amr"] == ["mfa", "otp"] and claims["email_verified"] is True
    totp_user.refresh_from_db()
    assert totp_user.check_password(NEW_PASSWORD)


def test_the_gates_of_a_sign_up_answered_in_order(api, confidential_app, email_code, mailoutbox, second_factors,
                                                  policy):
    """Sign-up with a captcha demanded and MFA required: captcha_required → identify →
    profile_incomplete → mfa_enrolment_required → submit."""
    policy(mfa=MfaPolicy(policy="required"))
    signing = Signing(api, confidential_app)
    for _ in range(3):  # an address without an account counts like one with
        error(signing.post("password", {"identifier": "new@example.com", "password": "wrong"}),
              400, "key", "invalid_credentials")
    assert api.put(f"{API}{signing.uid}/event", {"event": "sign_up"}).status_code == 200
    answered = [signing.requirement()]

    challenge = error(signing.post("code", {"email": "new@example.com"}), 400, "captcha_answer", "required")["captcha"]
    captcha = {"id": challenge["id"], "answer": CaptchaStore.objects.get(hashkey=challenge["id"]).response}
    sent = signing.api.step(signing.uid, "code", {"email": "new@example.com", "captcha": captcha})
    answered.append(signing.requirement())

    signing.step("code/verify", {"code_id": sent["code_id"], "code": mailed_code(mailoutbox)})
    answered.append(signing.requirement())

    signing.step("profile", {"password": NEW_PASSWORD})
    answered.append(signing.requirement())
    assert signing.state["methods"] == ["totp", "backup_code"]

    key = key_of(signing.api.step(signing.uid, "mfa/totp"))
    assert signing.step("mfa/totp/confirm", {"code": totp_now(key)})["next_step"] == "submit"
    codes = signing.api.step(signing.uid, "mfa/backup-codes")["codes"]
    assert not get_user_model().objects.exists()  # the factors wait for the account
    claims = signing.claims()
    answered.append("submit")

    assert answered == ["captcha_required", "identify", "profile_incomplete", "mfa_enrolment_required", "submit"]
    assert claims["amr"] == ["mfa", "otp"] and claims["email"] == "new@example.com" and claims["email_verified"] is True
    account = get_user_model().objects.get()
    assert TOTPDevice.objects.filter(user=account, confirmed=True).count() == 1
    assert BackupCode.objects.filter(user=account).count() == len(codes) == 10


# -- no enumeration ----------------------------------------------------------------------------------------------
def answer_of(response: Any) -> tuple[Any, ...]:
    """What a client can compare: the status, the body without its ids, the cookies set (names and
    attributes, not values)."""
    body = response.json()
    ids = {key: len(body.pop(key)) for key in ("code_id",) if key in body}
    cookies = sorted((name, {k: v for k, v in morsel.items() if v and k != "expires"})
                     for name, morsel in response.cookies.items())
    return response.status_code, body, ids, cookies


@pytest.mark.parametrize("event", ["sign_in", "sign_up", "forgot_password"])
def test_the_answers_do_not_tell_whether_an_address_has_an_account(db, user, email_code, mailoutbox, event):
    answers = []
    for address in ("alice@example.com", "nobody@example.com"):
        client = fresh_api()
        state = client.start(event)
        sent = client.post(f"{API}{state['id']}/code", {"email": address})
        assert sent.status_code == 200, sent.content
        code_id = sent.json()["code_id"]
        wrong = client.post(f"{API}{state['id']}/code/verify", {"code_id": code_id, "code": "000000"})
        again = client.post(f"{API}{state['id']}/code", {"email": address})
        after = client.get(f"{API}{state['id']}").json()
        answers.append((answer_of(sent), answer_of(wrong), answer_of(again),
                        {key: value for key, value in after.items() if key not in ("id", "expires_at")}))
    assert answers[0] == answers[1]
    assert answers[0][1][:2] == (400, {"key": {"code": "invalid_code", "message": "The code is incorrect."}})
    assert answers[0][2][0] == 429  # the cool-down, alike
