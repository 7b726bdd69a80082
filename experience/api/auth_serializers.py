"""The auth API's bodies and answers (SPEC §3 and §4): request serializers check the shape (types,
lengths) before the engine sees anything; answer serializers describe the JSON in the OpenAPI
schema."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiExample, PolymorphicProxySerializer
from rest_framework import serializers

from experience.api.serializers import CaptchaAnswer, text
from experience.models import Interaction

SECOND_FACTORS = ["totp", "backup_code", "email_code"]


CODE_PURPOSES = [Interaction.SIGN_IN, Interaction.SIGN_UP]


# -- requests ------------------------------------------------------------------------------------------
class Strict(serializers.Serializer):
    """A body of only the fields the operation names (the headless Identity API, SPEC §3): any other
    field is a ``validation`` error naming it, rather than a value silently dropped."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(str(name) for name in data if name not in self.fields)
            if unknown:
                raise serializers.ValidationError({name[:64]: [_("Unknown field.")] for name in unknown[:20]})
        return super().to_internal_value(data)


class StrictCaptcha(Strict, CaptchaAnswer):
    pass


class ClientRequest(serializers.Serializer):
    """Every request names its application; a confidential one proves its secret (or uses HTTP Basic)."""

    client_id = text(255, required=False, help_text=(
        "The application (first-party, headless API allowed); required unless HTTP Basic names it."))
    client_secret = text(255, required=False, help_text=(
        "A confidential application's secret, unless it authenticates with HTTP Basic."))

    client_id_by_handle = False  # the step's handle names the application: client_id may be left out

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        request = self.context.get("request")
        if request is not None and not self.client_id_by_handle and "Authorization" not in request.headers:
            fields["client_id"].required = True  # nothing else names the application
        return fields


class Scoped(ClientRequest):
    scope = text(2000, required=False, allow_blank=True, help_text=(
        "The scopes of the UserToken, space-separated (default `openid profile email`); each one a scope "
        "the provider offers."))


class SignInRequest(Scoped):
    identifier = text(254, required=False, help_text="Password types: e-mail address or username.")
    password = text(4096, required=False, trim_whitespace=False, help_text="Password types.")
    code_id = text(64, required=False, help_text="Code types: the `code_id` that `send-code` answered.")
    code = text(16, required=False, help_text="Code types: the code from the message.")
    captcha = CaptchaAnswer(required=False, help_text="The captcha a `captcha_answer` error asked for.")


class SendCodeRequest(ClientRequest):
    email = text(254, required=False, help_text="Send the code to this address (an `email-code` type).")
    phone_number = text(32, required=False, help_text="Send the code by SMS (an `sms-code` type), E.164.")
    purpose = serializers.ChoiceField(choices=CODE_PURPOSES, default=Interaction.SIGN_IN, help_text=(
        "What the code is for: `sign_in` (default) or `sign_up` (a code to an address without an account, "
        "for `sign-up`)."))
    data_2fa = text(128, required=False, help_text=(
        "Instead of an address: a second-factor code by e-mail for this Data2fa (its user's own verified "
        "address; method `email_code`)."))
    captcha = CaptchaAnswer(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        given = [name for name in ("email", "phone_number", "data_2fa") if attrs.get(name)]
        if len(given) != 1:
            raise serializers.ValidationError(_("Give exactly one of email, phone_number or data_2fa."))
        return attrs


class SignUpRequest(Scoped):
    code_id = text(64, required=False, help_text="The sign-up code's `code_id` (`send-code` with `purpose: sign_up`).")
    code = text(16, required=False, help_text="The code from the message: it verifies the address.")
    password = text(4096, required=False, trim_whitespace=False)
    username = text(150, required=False, help_text="When the experience's sign-up identifiers include it.")
    name = text(300, required=False)
    email = text(254, required=False, help_text="Only when the experience does not verify addresses by code.")
    phone_number = text(32, required=False, help_text="Only when the experience does not verify addresses by code.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if bool(attrs.get("code_id")) != bool(attrs.get("code")):
            raise serializers.ValidationError(_("Give code_id and code together."))
        return attrs


class CheckCodeRequest(Strict, ClientRequest):
    client_id_by_handle = True
    client_id = text(255, required=False, help_text=(
        "The application that obtained the Data2fa (optional: the Data2fa names it; a confidential one still "
        "authenticates)."))
    data_2fa = text(128, help_text="The Data2fa's handle.")
    code = text(64, help_text="The second factor's code (authenticator app, backup code, e-mail code).")
    method = serializers.ChoiceField(choices=SECOND_FACTORS, required=False, help_text=(
        "Which second factor (one of the Data2fa's `methods`); default `totp` when listed, else the first "
        "other than `email_code`."))
    code_id = text(64, required=False, help_text="`email_code`: the `code_id` that `send-code` answered.")


# -- the headless Identity API (SPEC §3, the B2B document's names) --------------------------------------
class LoginByPasswordRequest(Strict, Scoped):
    email = text(254, help_text="The account's e-mail address (a username too, when the password method accepts one).")
    password = text(4096, trim_whitespace=False)
    captcha = StrictCaptcha(required=False, help_text="The captcha a `captcha_answer` error asked for.")


class AuthorizationSendCodeRequest(Strict, SendCodeRequest):
    captcha = StrictCaptcha(required=False, help_text="The captcha a `captcha_answer` error asked for.")


class LoginRequest(Strict, Scoped):
    client_id_by_handle = True
    client_id = text(255, required=False, help_text=(
        "The application that obtained the `code_id` (optional: the code names it; a confidential one still "
        "authenticates)."))
    code_id = text(64, help_text="The `code_id` that `send-code` answered.")
    code = text(16, help_text="The code from the message.")


# -- answers ---------------------------------------------------------------------------------------------
class UserToken(serializers.Serializer):
    """An OAuth 2.0 token response issued for the application (refresh, revoke and introspect it at
    the standard endpoints)."""

    access_token = serializers.CharField()
    token_type = serializers.CharField(help_text="`Bearer`.")
    expires_in = serializers.IntegerField()
    refresh_token = serializers.CharField()
    scope = serializers.CharField()
    id_token = serializers.CharField(required=False, help_text="When `openid` is in scope.")


class Data2fa(serializers.Serializer):
    """The first factor passed; the user must pass a second one at `/api/authorization/check-code`."""

    data_2fa = serializers.CharField(help_text="Opaque, single use, for this application only.")
    timeout = serializers.IntegerField(help_text="Seconds until it expires.")
    methods = serializers.ListField(child=serializers.CharField(), help_text=(
        "The second factors the user may use: `totp`, `backup_code`, `email_code`."))


USER_TOKEN_OR_DATA_2FA = PolymorphicProxySerializer(
    component_name="UserTokenOrData2fa", serializers=[UserToken, Data2fa], resource_type_field_name=None)


class CheckAnswer(serializers.Serializer):
    user = serializers.DictField(help_text=(
        "The user's claims for the token's scopes, as userinfo answers them: `sub`, `email`, `name`, ..."))
    authenticator = serializers.CharField(allow_null=True, help_text=(
        "The authenticator the user signed in with (null when the token did not come from the auth API)."))


# -- examples ----------------------------------------------------------------------------------------------
TOKEN_EXAMPLE = {"access_token": "q8Hc…", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "Zb3k…",
                 "scope": "openid profile email", "id_token": "eyJhbGciOiJSUzI1NiIs…"}
DATA_2FA_EXAMPLE = {"data_2fa": "4kqvN…", "timeout": 900, "methods": ["totp", "backup_code", "email_code"]}
EXAMPLES = {
    "sign_in": [
        OpenApiExample("Password", request_only=True, value={
            "client_id": "my-app", "identifier": "alice@example.com", "password": "correct horse battery staple"}),
        OpenApiExample("Code (after send-code)", request_only=True, value={
            "client_id": "my-app", "code_id": "Xy3…", "code": "123456"}),
        OpenApiExample("UserToken", response_only=True, value=TOKEN_EXAMPLE),
        OpenApiExample("Data2fa (the user has a second factor)", response_only=True, value=DATA_2FA_EXAMPLE),
    ],
    "send_code": [
        OpenApiExample("Sign-in code", request_only=True, value={"client_id": "my-app", "email": "alice@example.com"}),
        OpenApiExample("Sign-up code", request_only=True, value={
            "client_id": "my-app", "email": "new@example.com", "purpose": "sign_up"}),
        OpenApiExample("OtpCode", response_only=True, value={"code_id": "Xy3…", "timeout": 600, "resend_after": 60}),
    ],
    "sign_up": [
        OpenApiExample("Verified e-mail, then a password", request_only=True, value={
            "client_id": "my-app", "code_id": "Xy3…", "code": "123456", "password": "a long new passphrase"}),
        OpenApiExample("UserToken", response_only=True, value=TOKEN_EXAMPLE),
    ],
    "check_code": [
        OpenApiExample("TOTP", request_only=True, value={
            "client_id": "my-app", "data_2fa": "4kqvN…", "code": "123456", "method": "totp"}),
        OpenApiExample("UserToken", response_only=True, value=TOKEN_EXAMPLE),
    ],
    "login_by_password": [
        OpenApiExample("E-mail and password", request_only=True, value={
            "client_id": "my-app", "email": "alice@example.com", "password": "correct horse battery staple"}),
        OpenApiExample("With the captcha a captcha_answer error showed", request_only=True, value={
            "client_id": "my-app", "email": "alice@example.com", "password": "correct horse battery staple",
            "captcha": {"id": "0f3c…", "answer": "K7QX2M"}}),
        OpenApiExample("UserToken", response_only=True, value=TOKEN_EXAMPLE),
        OpenApiExample("Data2fa (the user has a second factor)", response_only=True, value=DATA_2FA_EXAMPLE),
    ],
    "login": [
        OpenApiExample("The code from the message", request_only=True, value={
            "client_id": "my-app", "code_id": "Xy3…", "code": "123456"}),
        OpenApiExample("UserToken", response_only=True, value=TOKEN_EXAMPLE),
        OpenApiExample("Data2fa (the user has a second factor)", response_only=True, value=DATA_2FA_EXAMPLE),
    ],
    "check": [
        OpenApiExample("Signed in", response_only=True, value={
            "user": {"sub": "3f2a…", "email": "alice@example.com", "email_verified": True, "name": "Alice Liddell",
                     "preferred_username": "alice"}, "authenticator": "password"}),
    ],
}
