"""Prepare the embedded server: signing key, an admin, a demo user and the demo client.

Idempotent: what exists is kept; new passwords are written once to var/credentials.json (0600) and
printed on every run.
"""

from __future__ import annotations

import json
import os
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from oauth2_provider.models import get_application_model

from identity import keys
from identity.identifiers import create_user
from identity.models import ApplicationSettings


class Command(BaseCommand):
    help = "Create the signing key, an admin, a demo user and the demo client (idempotent)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    def handle(self, *args: Any, base_url: str, **options: Any) -> None:
        key = keys.ensure_active_key()
        path = settings.VAR_DIR / "credentials.json"
        saved = json.loads(path.read_text()) if path.exists() else {}
        users = get_user_model()._default_manager
        try:
            if not users.filter(username="admin").exists():
                saved["admin"] = secrets.token_urlsafe(12)
                create_user({"username": "admin", "email": "admin@example.com"}, password=saved["admin"], superuser=True)
            if not users.filter(username="demo").exists():
                saved["demo"] = secrets.token_urlsafe(12)
                create_user({"username": "demo", "email": "demo@example.com", "first_name": "Demo", "last_name": "User"},
                            password=saved["demo"], profile={"email_verified": True})
        except ValidationError as error:  # another account holds admin@example.com, say
            raise CommandError("; ".join(f"{field}: {' '.join(messages)}" for field, messages in error.message_dict.items())) from None
        application = self.demo_client(base_url)
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(saved, indent=2))
        os.chmod(path, 0o600)
        self.stdout.write(self.style.SUCCESS("Portcullis is ready."))
        self.stdout.write(f"  signing key        {key.kid}")
        self.stdout.write(f"  admin              {base_url}/admin/   user: admin   password: {saved.get('admin', '(unchanged)')}")
        self.stdout.write(f"  demo user          e-mail: demo@example.com (or username demo)   password: {saved.get('demo', '(unchanged)')}")
        self.stdout.write(f"  demo client        {base_url}/demo/   client_id: {application.client_id} (public, PKCE)")
        self.stdout.write(f"  discovery          {base_url}/.well-known/openid-configuration")

    def demo_client(self, base_url: str) -> Any:
        Application = get_application_model()
        client_id = settings.PORTCULLIS_DEMO_CLIENT_ID
        bases = [base_url, base_url.replace("://127.0.0.1", "://localhost")]
        redirects = [f"{base}/demo/callback" for base in bases]
        application, _created = Application.objects.update_or_create(
            client_id=client_id,
            defaults={
                "name": "Portcullis demo",
                "client_type": Application.CLIENT_PUBLIC,
                "authorization_grant_type": Application.GRANT_AUTHORIZATION_CODE,
                "redirect_uris": " ".join(dict.fromkeys(redirects)),
                "post_logout_redirect_uris": " ".join(dict.fromkeys(f"{base}/demo/" for base in bases)),
                "algorithm": Application.RS256_ALGORITHM,
                "skip_authorization": False,
            },
        )
        ApplicationSettings.objects.update_or_create(application=application, defaults={"first_party": True})
        return application
