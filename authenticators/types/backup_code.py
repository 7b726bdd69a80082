"""The ``backup_code`` second factor: ten codes of 80 bits shown once, stored as HMACs, each spent
by a conditional UPDATE (of parallel uses of one code exactly one wins)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from authenticators import factors
from authenticators.base import AuthError, SecondFactorAuth


class BackupCodeForm(forms.Form):
    code = forms.CharField(
        label=_("Backup code"), max_length=64,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autocapitalize": "none", "spellcheck": "false"}),
    )


def unused(user: Any) -> Any:
    """``user``'s backup codes not used yet (``user``: an account, or its primary key, which may be
    an expression such as ``OuterRef("user_id")``)."""
    from authenticators.models import BackupCode

    return BackupCode.objects.filter(user_id=getattr(user, "pk", user), used_at__isnull=True)


def unused_codes(user: Any) -> int:
    return int(unused(user).count())


def replace_codes(user: Any, digests: list[str] | None = None) -> list[str]:
    """Give ``user`` a new set of codes (the old ones stop working); the codes, to show once. With
    ``digests`` (codes made before the account existed), those are stored and nothing is shown."""
    from authenticators.models import BackupCode

    codes: list[str] = []
    if digests is None:
        codes = [factors.new_backup_code() for _ in range(factors.BACKUP_CODE_COUNT)]
        digests = [factors.backup_digest(code) for code in codes]
    with transaction.atomic():
        BackupCode.objects.filter(user=user).delete()
        BackupCode.objects.bulk_create(BackupCode(user=user, digest=digest) for digest in digests)
    return codes


class BackupCodeAuth(SecondFactorAuth):
    enrolment_by_pk = True  # enrolment(user) filters on the user alone

    def amr(self) -> list[str]:
        return ["otp"]

    def enrolment(self, user: Any) -> Any:
        return unused(user)

    @classmethod
    def enrolment_by(cls, user_pk: Any) -> Any:
        return unused(user_pk)

    def verify_for(self, user: Any, data: dict[str, Any]) -> None:
        from authenticators.models import BackupCode

        code = factors.normalise_backup_code(data.get("code"))
        failure = ""
        with factors.checking(user, self.authenticator) as check:
            if check.disabled:
                failure = "factor_disabled"
            elif len(code) != factors.BACKUP_CODE_LENGTH:
                failure = "invalid_code"
            else:
                spent = BackupCode.objects.filter(user=user, digest=factors.backup_digest(code),
                                                  used_at__isnull=True).update(used_at=timezone.now())
                check.ok = spent == 1
                failure = "" if check.ok else "invalid_code"
        if failure:
            raise AuthError(failure)
