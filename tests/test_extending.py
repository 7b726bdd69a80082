"""The worked example of docs/extending.md: a new authenticator type, registered and used."""

from __future__ import annotations

import hmac
from typing import Any

import pytest
from django import forms
from django.contrib.auth import get_user_model

from authenticators.base import AuthError, BaseAuth
from authenticators.models import Authenticator
from authenticators.registry import AlreadyRegistered, registry
from tests.helpers import authorize_params, query_of

pytestmark = pytest.mark.django_db


# --- the example, as in docs/extending.md -----------------------------------------------------------
class StaffCodeSettingsForm(forms.Form):
    shared_code = forms.CharField(label="Shared staff code", min_length=8)


class StaffCodeSignInForm(forms.Form):
    username = forms.CharField(label="Staff username")
    code = forms.CharField(label="Staff code", widget=forms.PasswordInput)


class StaffCodeAuth(BaseAuth):
    """Staff sign in with their username and a code the admin set on the authenticator."""

    def amr(self) -> list[str]:
        return ["pin"]

    def validate(self, data: dict[str, Any]) -> Any:
        expected = self.options.get("shared_code", "")
        if not expected or not hmac.compare_digest(str(data.get("code", "")), expected):
            raise AuthError("invalid_credentials")
        user = get_user_model().objects.filter(username=data.get("username"), is_staff=True).first()
        if user is None:
            raise AuthError("invalid_credentials")
        return user
# -------------------------------------------------------------------------------------------------


@pytest.fixture
def staff_code_type():
    registry.register("staff-code", StaffCodeAuth, settings_form=StaffCodeSettingsForm,
                      sign_in_form=StaffCodeSignInForm, title="Staff code", secret_options=("shared_code",))
    yield registry.get("staff-code")
    registry.unregister("staff-code")


def test_a_registered_type_signs_a_user_in_on_the_hosted_page(flow, confidential_app, user, staff_code_type, settings):
    settings.PORTCULLIS_STAFF_MFA_REQUIRED = False  # staff need a second factor by default (tests/test_admin_sign_in.py)
    user.is_staff = True
    user.save()
    Authenticator.objects.create(name="staff", auth_type="staff-code", title="Staff", sort_order=1,
                                 options={"shared_code": "open-sesame-42"})
    response = flow.authorize(authorize_params(confidential_app))
    sign_in = response["Location"]
    page = flow.client.get(sign_in + "?authenticator=staff").content.decode()
    assert '<label for="id_username">Staff username</label>' in page
    wrong = flow.client.post(sign_in + "?authenticator=staff", {"authenticator": "staff", "username": "alice", "code": "nope"})
    assert wrong.status_code == 400 and "The sign-in details are incorrect." in wrong.content.decode()
    done = flow.client.post(sign_in + "?authenticator=staff", {"authenticator": "staff", "username": "alice", "code": "open-sesame-42"})
    assert done.status_code == 303
    code = query_of(flow.client.get(done["Location"])["Location"])["code"]
    token = flow.token(confidential_app, code, {"redirect_uri": authorize_params(confidential_app)["redirect_uri"]})
    assert token.status_code == 200


def test_registering_a_name_twice_is_refused(staff_code_type):
    with pytest.raises(AlreadyRegistered):
        registry.register("staff-code", StaffCodeAuth)


def test_admin_never_shows_secret_options_and_keeps_them(admin_client, staff_code_type):
    authenticator = Authenticator.objects.create(name="staff", auth_type="staff-code", title="Staff",
                                                 options={"shared_code": "open-sesame-42"})
    url = f"/admin/authenticators/authenticator/{authenticator.pk}/change/"
    page = admin_client.get(url).content.decode()
    assert "open-sesame-42" not in page and 'type="password" name="options-shared_code"' in page
    response = admin_client.post(url, {"name": "staff", "title": "Staff", "description": "", "enabled": "on",
                                       "sort_order": "0", "options-shared_code": ""})  # blank: keep it
    assert response.status_code == 302
    authenticator.refresh_from_db()
    assert authenticator.options == {"shared_code": "open-sesame-42"}


def test_user_authenticator_helpers(staff_code_type):
    authenticator = Authenticator.objects.create(name="staff", auth_type="staff-code", title="Staff")
    assert authenticator.find_user("emp-7") is None
    created = authenticator.find_or_create_user("emp-7", {"email": "e7@example.com"}, {"team": "ops"})
    assert authenticator.find_or_create_user("emp-7") == created
    assert not created.has_usable_password()
    assert created.authenticator_links.get().meta == {"team": "ops"}
