"""Signing keys: made on first use, imported from the environment, rotated from admin.

The active key and the JWKS document are computed once per key change: every process keeps them
in memory under a version number that lives in the shared cache and moves on each change.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from django.db import IntegrityError, transaction
from django.utils import timezone
from jwcrypto import jwk
from oauth2_provider.settings import oauth2_settings

from identity import versions
from identity.app_settings import app_settings
from identity.models import SigningKey

VERSION_KEY = "portcullis:signing-keys:version"
# How long a process trusts its key set before asking the shared cache whether keys changed. A
# rotation reaches the other processes within this time; the process that rotates sees it at once.
VERSION_CHECK_SECONDS = 2.0
_lock = threading.Lock()


@dataclass(frozen=True)
class KeySet:
    version: str
    active: jwk.JWK
    jwks_json: bytes
    public_keys: dict[str, jwk.JWK]
    # What signing a token needs, worked out once per key: the encoded JWS header (with the active
    # key's thumbprint as kid) and the key as cryptography's object.
    signing_header: bytes
    signing_key: Any


_memo: KeySet | None = None
_checked_at = 0.0


def _version() -> str:
    return versions.current(VERSION_KEY)


def keys_changed() -> None:
    """Tell every process to rebuild its key set (this one at once, the others within seconds)."""
    global _memo
    versions.bump(VERSION_KEY)
    _memo = None


def generate_key() -> SigningKey:
    key = jwk.JWK.generate(kty="RSA", size=2048)
    return SigningKey(kid=key.thumbprint(), private_pem=key.export_to_pem(private_key=True, password=None).decode())


def _configured_pem() -> str:
    if app_settings.SIGNING_KEY_PEM:
        return app_settings.SIGNING_KEY_PEM
    if app_settings.SIGNING_KEY_FILE:
        return Path(app_settings.SIGNING_KEY_FILE).read_text()
    return ""


def ensure_active_key() -> SigningKey:
    """The active key. A configured key (``SIGNING_KEY_PEM`` / ``SIGNING_KEY_FILE``) the database has
    not met is imported and made active, once: a key it already holds is not made active again, so a
    rotation in admin holds while the variable still names the older key, and processes started with
    different keys (a rolling restart onto a new key) do not take turns activating theirs. Without a
    configured key and without an active one, a key is generated."""
    current = SigningKey.objects.filter(active=True).first()
    pem = _configured_pem()
    if pem:
        kid = jwk.JWK.from_pem(pem.encode()).thumbprint()
        known = current if current is not None and current.kid == kid else SigningKey.objects.filter(kid=kid).first()
        if known is None:
            return _activate(SigningKey(kid=kid, private_pem=pem))
        if current is None:
            return _activate(known)
    return current or _activate(generate_key())


def rotate() -> SigningKey:
    """Make a new active key; the old one stays in the JWKS until its tokens have expired."""
    return _activate(generate_key())


def _activate(key: SigningKey) -> SigningKey:
    try:
        with transaction.atomic():
            SigningKey.objects.filter(active=True).exclude(pk=key.pk).update(active=False, retired_at=timezone.now())
            key.active = True
            key.retired_at = None
            key.save()
    except IntegrityError:  # another process activated a key at the same moment: use theirs
        return SigningKey.objects.get(active=True)
    keys_changed()
    return key


def publication_window() -> timedelta:
    """How long a retired key stays published: the longest life of a token it signed."""
    return timedelta(seconds=max(oauth2_settings.ID_TOKEN_EXPIRE_SECONDS, oauth2_settings.ACCESS_TOKEN_EXPIRE_SECONDS))


def _build(version: str, active_row: SigningKey) -> KeySet:
    cutoff = timezone.now() - publication_window()
    rows = [active_row, *SigningKey.objects.filter(active=False, retired_at__gt=cutoff).exclude(pk=active_row.pk)]
    public: dict[str, jwk.JWK] = {}
    exported = []
    for row in rows:
        key = jwk.JWK.from_pem(row.private_pem.encode())
        public_jwk = json.loads(key.export_public())
        public_jwk.update({"kid": row.kid, "use": "sig", "alg": "RS256"})
        exported.append(public_jwk)
        public[row.kid] = jwk.JWK(**public_jwk)
    active = jwk.JWK.from_pem(active_row.private_pem.encode())
    jwks_json = json.dumps({"keys": exported}, separators=(",", ":")).encode()
    header = json.dumps({"typ": "JWT", "alg": "RS256", "kid": active.thumbprint()}, separators=(",", ":"))
    return KeySet(version=version, active=active, jwks_json=jwks_json, public_keys=public,
                  signing_header=base64url(header.encode()), signing_key=active.get_op_key("sign"))


def base64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def sign(claims: dict[str, Any]) -> str:
    """A compact JWS (RS256, RFC 7515) of ``claims`` with the active key: what the ID tokens are.
    The header and the key come ready from the key set; only the claims and the signature are new."""
    key_set_now = key_set()
    payload = base64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = key_set_now.signing_header + b"." + payload
    signature = key_set_now.signing_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return (signing_input + b"." + base64url(signature)).decode("ascii")


def key_set() -> KeySet:
    global _memo, _checked_at
    memo = _memo
    now = time.monotonic()
    if memo is not None and now - _checked_at < VERSION_CHECK_SECONDS:
        return memo
    version = _version()
    _checked_at = now
    if memo is not None and memo.version == version:
        return memo
    with _lock:
        if _memo is None or _memo.version != version:
            active_row = ensure_active_key()  # may create the first key, which moves the version
            _memo = _build(_version(), active_row)
        return _memo


def active_private_pem() -> str:
    """The active key as PEM: what DOT's ``OIDC_RSA_PRIVATE_KEY`` resolves to (see defaults)."""
    return key_set().active.export_to_pem(private_key=True, password=None).decode()
