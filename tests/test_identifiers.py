"""Sign-in identifiers are one case-insensitive namespace: no account can take another's e-mail,
username or phone number in any case or kind, and sign-in never guesses between accounts."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import Argon2PasswordHasher
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from authenticators.models import Authenticator, UserAuthenticator
from experience.models import AuditEvent
from identity import identifiers
from identity.identifiers import EMAIL, PHONE, USERNAME, comparison_key, create_user, find_user
from identity.models import Profile, SignInIdentifier
from tests.helpers import PASSWORD, authorize_params, form_errors, run_together, sign_in_url_from

pytestmark = pytest.mark.django_db
User = get_user_model()
GENERIC_FAILURE = "The sign-in details are incorrect."


def errors_of(error: ValidationError) -> dict[str, list[str]]:
    return {field: [str(message) for message in messages] for field, messages in error.message_dict.items()}


def sign_in(flow: Any, app: Any, identifier: str, password: str = PASSWORD) -> Any:
    response = flow.authorize(authorize_params(app))
    assert response.status_code == 303
    return flow.client.post(sign_in_url_from(response),
                            {"identifier": identifier, "password": password, "authenticator": "password"})


def page_error(response: Any) -> str:
    return " ".join(form_errors(response.content.decode()))


def legacy_accounts(*accounts: dict[str, str]) -> list[Any]:
    """Accounts from before uniqueness was enforced (an import that skipped model saves), then the
    index rebuilt by the operator's command."""
    from django.contrib.auth.hashers import make_password

    rows = User.objects.bulk_create([User(password=make_password(PASSWORD), **values) for values in accounts])
    call_command("portcullis_identifiers", stdout=open("/dev/null", "w"))  # noqa: SIM115
    return [User.objects.get(username=row.username) for row in rows]


# -- the comparison key ----------------------------------------------------------------------------
@pytest.mark.parametrize(("first", "second"), [
    ("Dave", "dave"),
    ("ＤＡＶＥ", "dave"),  # fullwidth letters: NFKC
    ("ERIN@example.com", " erin@EXAMPLE.com "),
    ("STRASSE", "straße"),  # case folding, not lower()
    ("ПЁТР@пример.рф", "пётр@ПРИМЕР.РФ"),
    ("ΣΊΣΥΦΟΣ", "σίσυφος"),
])
def test_identifiers_a_person_reads_as_the_same_share_one_key(first, second):
    assert comparison_key(USERNAME, first) == comparison_key(EMAIL, second)


def test_a_phone_number_is_compared_without_separators():
    assert comparison_key(PHONE, "+1 (555) 123-4567") == comparison_key(USERNAME, "+15551234567")


# -- creating accounts through our path (sign-up, upstream sign-in, new_user, bootstrap) ---------------
@pytest.mark.parametrize(("values", "profile", "field"), [
    ({"username": "ALICE"}, None, "username"),
    ({"username": "bob", "email": "ALICE@example.com"}, None, "email"),
    ({"username": "alice@example.com"}, None, "username"),  # a username equal to another's e-mail
    ({"username": "+15551234567"}, None, "username"),  # a username equal to another's phone number
    ({"username": "bob"}, {"phone_number": "+1 555 123 4567"}, "phone_number"),
])
def test_create_user_refuses_an_identifier_another_account_holds(user, values, profile, field):
    with pytest.raises(ValidationError) as refused:
        create_user(values, password=PASSWORD, profile=profile)
    assert list(errors_of(refused.value)) == [field]
    assert "already used by another account" in errors_of(refused.value)[field][0]
    assert User.objects.count() == 1


def test_an_email_address_may_not_equal_another_accounts_username(db):
    create_user({"username": "carol@example.com"}, password=PASSWORD)
    with pytest.raises(ValidationError) as refused:
        create_user({"username": "carl", "email": "Carol@Example.com"}, password=PASSWORD)
    assert errors_of(refused.value) == {"email": ["This e-mail address is already used by another account."]}


def test_create_user_stores_the_normalised_identifiers_and_indexes_them(db):
    created = create_user({"username": "ｅｒｉｎ", "email": " Erin@Example.COM "}, password=PASSWORD,
                          profile={"phone_number": "+44 20 7946 0958", "email_verified": True})
    assert (created.username, created.email) == ("erin", "Erin@example.com")
    profile = Profile.objects.get(user=created)
    assert profile.phone_number == "+442079460958" and profile.email_verified
    assert sorted(SignInIdentifier.objects.values_list("key", "kinds", "duplicate")) == [
        ("+442079460958", "phone", False), ("erin", "username", False), ("erin@example.com", "email", False)]


def test_one_account_may_use_its_email_address_as_its_username(db):
    created = create_user({"username": "dana@example.com", "email": "Dana@example.com"}, password=PASSWORD)
    assert list(SignInIdentifier.objects.values_list("user", "key", "kinds")) == [
        (created.pk, "dana@example.com", "email,username")]


def test_a_malformed_phone_number_is_refused(db):
    with pytest.raises(ValidationError) as refused:
        create_user({"username": "bob"}, profile={"phone_number": "555-1234"})
    assert errors_of(refused.value) == {"phone_number": ["Enter the phone number in international format, e.g. +15551234567."]}


def test_new_user_of_an_authenticator_refuses_a_taken_email_and_leaves_nothing_behind(user):
    authenticator = Authenticator.objects.create(name="upstream", auth_type="password", title="Upstream")
    with pytest.raises(ValidationError) as refused:
        authenticator.new_user("sub-123", {"email": "ALICE@example.com"})
    assert list(errors_of(refused.value)) == ["email"]
    assert User.objects.count() == 1 and not UserAuthenticator.objects.exists()
    created = authenticator.new_user("sub-456", {"email": "someone@example.com"})
    assert find_user("SOMEONE@example.com") == created


def test_bootstrap_refuses_to_give_the_admin_an_email_another_account_holds(settings, tmp_path, django_user_model):
    settings.VAR_DIR = tmp_path
    django_user_model.objects.create_user("someone", "ADMIN@example.com", PASSWORD)
    with pytest.raises(CommandError, match="email: This e-mail address is already used by another account."):
        call_command("portcullis_bootstrap", base_url="http://127.0.0.1:8123")
    assert not django_user_model.objects.filter(username="admin").exists()


# -- any other path that saves accounts (a project's code, createsuperuser) is guarded too ---------------
def test_a_plain_orm_create_user_cannot_take_another_accounts_username_in_another_case(user):
    with pytest.raises(ValidationError) as refused:
        User.objects.create_user("Alice", "other@example.com", PASSWORD)
    assert list(errors_of(refused.value)) == ["username"]
    assert User.objects.count() == 1


def test_changing_an_email_address_to_another_accounts_is_refused_and_nothing_changes(user):
    bob = create_user({"username": "bob", "email": "bob@example.com"}, password=PASSWORD)
    bob.email = "ALICE@EXAMPLE.COM"
    with pytest.raises(ValidationError):
        bob.save()
    assert User.objects.get(pk=bob.pk).email == "bob@example.com"
    assert find_user("alice@example.com") == user


def test_changing_identifiers_moves_them_in_the_index(user):
    user.username, user.email = "alice2", "alice@new.example"
    user.save()
    assert find_user("alice") is None and find_user("ALICE2") == user and find_user("alice@new.example") == user
    create_user({"username": "alice", "email": "alice@example.com"}, password=PASSWORD)  # free again


def test_a_phone_number_another_account_holds_is_refused_on_the_profile(user):
    bob = create_user({"username": "bob"}, password=PASSWORD)
    profile = Profile.objects.get(user=bob)
    profile.phone_number = "+15551234567"
    with pytest.raises(ValidationError) as refused:
        profile.save()
    assert list(errors_of(refused.value)) == ["phone_number"]


def test_a_last_login_update_costs_no_query_beyond_its_own(user, django_assert_num_queries):
    from django.contrib.auth.models import update_last_login

    with django_assert_num_queries(1):
        update_last_login(None, user)


# -- confusables -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("username", ["\u0430lice", "alic\u0435", "p\u0430yp\u0430l", "\u03b1lice", "g\u03bfogle"])
def test_a_username_that_mixes_scripts_is_refused(db, username):
    with pytest.raises(ValidationError) as refused:
        create_user({"username": username}, password=PASSWORD)
    assert list(errors_of(refused.value)) == ["username"]
    assert refused.value.error_dict["username"][0].code == "mixed_script"


@pytest.mark.parametrize("username", ["alice_2", "Ålesund", "алиса", "山田たろう", "yamada山田", "김민준", "σίσυφος"])
def test_usernames_in_one_script_or_a_customary_mix_are_accepted(db, username):
    assert create_user({"username": username}, password=PASSWORD).username == username


# -- signing in --------------------------------------------------------------------------------------
@pytest.mark.parametrize("identifier", ["ALICE", "ａｌｉｃｅ", "alice@EXAMPLE.com", " Alice@Example.com "])
def test_sign_in_finds_the_account_in_any_case_and_width(flow, confidential_app, user, identifier):
    assert sign_in(flow, confidential_app, identifier).status_code == 303


def test_unicode_email_addresses_are_case_insensitive_on_every_database(flow, confidential_app, password_authenticator):
    petr = create_user({"username": "petr", "email": "Пётр@example.com"}, password=PASSWORD)
    with pytest.raises(ValidationError):
        create_user({"username": "petr2", "email": "ПЁТР@example.com"}, password=PASSWORD)  # iexact misses it on SQLite
    assert find_user("пётр@EXAMPLE.com") == petr
    assert sign_in(flow, confidential_app, "ПЁТР@example.com").status_code == 303


def test_the_authenticator_options_still_choose_the_kinds(flow, confidential_app, user, password_authenticator):
    password_authenticator.options = {"allow_email": True, "allow_username": False}
    password_authenticator.save()
    assert sign_in(flow, confidential_app, "alice").status_code == 400
    assert sign_in(flow, confidential_app, "alice@example.com").status_code == 303


def test_an_identifier_several_legacy_accounts_hold_signs_nobody_in(flow, confidential_app, password_authenticator, monkeypatch):
    upper, lower = legacy_accounts({"username": "Dave", "email": "dave.one@example.com"},
                                   {"username": "dave", "email": "dave.two@example.com"})
    hashes = []
    original_encode, original_verify = Argon2PasswordHasher.encode, Argon2PasswordHasher.verify
    monkeypatch.setattr(Argon2PasswordHasher, "encode", lambda self, *a: hashes.append("encode") or original_encode(self, *a))
    monkeypatch.setattr(Argon2PasswordHasher, "verify", lambda self, *a: hashes.append("verify") or original_verify(self, *a))

    for identifier in ("dave", "Dave", "DAVE"):
        response = sign_in(flow, confidential_app, identifier)  # the right password, for both accounts
        assert response.status_code == 400 and page_error(response) == GENERIC_FAILURE
    unknown = sign_in(flow, confidential_app, "nobody")
    assert unknown.status_code == 400 and page_error(unknown) == GENERIC_FAILURE
    assert hashes == ["encode"] * 4  # exactly the work an unknown account costs
    reasons = list(AuditEvent.objects.filter(kind=AuditEvent.SIGN_IN_FAILED).order_by("pk").values_list("reason", flat=True))
    assert reasons == ["ambiguous_identifier"] * 3 + ["invalid_credentials"]
    # Each account still signs in by an identifier that is its own.
    assert sign_in(flow, confidential_app, "dave.two@example.com").status_code == 303


def test_once_all_accounts_but_one_change_it_the_identifier_works_again(flow, confidential_app, password_authenticator):
    upper, lower = legacy_accounts({"username": "Dave"}, {"username": "dave"})
    assert SignInIdentifier.objects.filter(key="dave", duplicate=True).count() == 2
    upper.username = "dave-the-elder"
    upper.save()
    assert list(SignInIdentifier.objects.filter(key="dave").values_list("user", "duplicate")) == [(lower.pk, False)]
    assert sign_in(flow, confidential_app, "DAVE").status_code == 303


def test_an_email_equal_to_another_legacy_accounts_username_is_ambiguous(db):
    legacy_accounts({"username": "erin@example.com"}, {"username": "erin", "email": "ERIN@example.com"})
    with pytest.raises(identifiers.AmbiguousIdentifier):
        find_user("erin@example.com")


def test_a_bulk_update_that_skipped_the_index_fails_closed_until_the_index_is_rebuilt(user):
    User.objects.filter(pk=user.pk).update(email="alice@moved.example")
    assert find_user("alice@example.com") is None  # no longer hers: nobody, not a stale match
    assert find_user("alice@moved.example") is None
    call_command("portcullis_identifiers", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert find_user("alice@moved.example") == user


def test_the_identifiers_command_lists_the_identifiers_several_accounts_hold(db, capsys):
    legacy_accounts({"username": "Dave"}, {"username": "dave"}, {"username": "erin"})
    call_command("portcullis_identifiers")
    out = capsys.readouterr().out
    assert "3 sign-in identifiers indexed." in out and "1 identifiers are held by several accounts" in out
    assert re.search(r"dave: (Dave|dave) \(id \d+\), (Dave|dave) \(id \d+\)", out), out


@pytest.mark.parametrize("identifier", ["a\x00b", "\ud800@example.com", "x" * 5000])
def test_unstorable_identifiers_are_unknown_accounts(user, identifier):
    assert find_user(identifier) is None


# -- races: the database decides ---------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("checked", [True, False], ids=["natural-race", "both-passed-the-check"])
def test_two_sign_ups_racing_for_one_email_address_give_one_account(monkeypatch, checked):
    if not checked:  # as if both had read the index before either wrote: only the constraint is left
        monkeypatch.setattr(identifiers, "_lookup", lambda keys, user_id, using=None: ([], set()))
    results = run_together(2, lambda i: create_user({"username": f"racer{i}", "email": f"{'SAME' if i else 'same'}@example.com"},
                                             password=PASSWORD))
    winners = [result for result in results if isinstance(result, User)]
    losers = [result for result in results if isinstance(result, ValidationError)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert list(errors_of(losers[0])) == ["email"]
    assert User.objects.filter(email__iexact="same@example.com").count() == 1
    assert list(SignInIdentifier.objects.filter(key="same@example.com").values_list("user", flat=True)) == [winners[0].pk]


@pytest.mark.django_db(transaction=True)
def test_an_account_written_outside_a_transaction_that_loses_the_race_is_marked_not_matched(monkeypatch):
    """A project's own code saving in autocommit: the account is written before the index refuses it,
    so the collision is recorded and sign-in by that identifier refuses to guess."""
    first = User.objects.create_user("first", "twin@example.com", PASSWORD)
    monkeypatch.setattr(identifiers, "_lookup", lambda keys, user_id, using=None: ([], set()))
    with pytest.raises(ValidationError):
        User.objects.create_user("second", "TWIN@example.com", PASSWORD)
    second = User.objects.get(username="second")
    monkeypatch.undo()
    assert sorted(SignInIdentifier.objects.filter(key="twin@example.com").values_list("user", "duplicate")) == [
        (first.pk, True), (second.pk, True)]
    with pytest.raises(identifiers.AmbiguousIdentifier):
        find_user("twin@example.com")


def test_a_deleted_profile_frees_its_phone_number(user):
    Profile.objects.filter(user=user).delete()
    assert find_user("+15551234567") is None
    other = create_user({"username": "bob"}, profile={"phone_number": "+15551234567"})
    assert find_user("+15551234567") == other


def test_deleting_an_account_frees_its_identifiers(user):
    user.delete()
    assert not SignInIdentifier.objects.exists()
    assert create_user({"username": "ALICE", "email": "alice@example.com"}, profile={"phone_number": "+15551234567"})


# -- what the look-up answers beside the account: its second factors (identity.identifiers.ask_with_account)
def test_the_look_up_of_an_account_answers_which_second_factors_it_has(user, django_assert_num_queries):
    from django.utils import timezone
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from authenticators.base import enrolled_each
    from authenticators.models import BackupCode
    from authenticators.types.backup_code import BackupCodeAuth
    from authenticators.types.totp import TotpAuth

    totp, backup = TotpAuth(Authenticator(auth_type="totp")), BackupCodeAuth(Authenticator(auth_type="backup_code"))

    def asked() -> list[bool]:
        with django_assert_num_queries(1):  # the look-up alone
            found = find_user("ALICE")
        with django_assert_num_queries(0):  # the engine asks nothing more of the account
            return enrolled_each(found, [totp, backup])

    assert asked() == [False, False]
    TOTPDevice.objects.create(user=user, name="phone", confirmed=False)
    BackupCode.objects.create(user=user, digest="a" * 64, used_at=timezone.now())
    assert asked() == [False, False]  # an unconfirmed device, a used code: not set up
    TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    assert asked() == [True, False]
    BackupCode.objects.create(user=user, digest="b" * 64)
    assert asked() == [True, True]
    # an account loaded any other way is asked as before, in one statement
    loaded = get_user_model().objects.get(pk=user.pk)
    assert identifiers.facts_of(loaded) == {}
    with django_assert_num_queries(1):
        assert enrolled_each(loaded, [totp, backup]) == [True, True]
