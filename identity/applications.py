"""Looking applications up: the one place faces and the validator find a client by its id."""

from __future__ import annotations

from typing import Any

from django.db import router
from oauth2_provider.models import get_application_model

from identity.prepared import PreparedLookup

Application = get_application_model()

_applications = PreparedLookup(
    lambda client_id: Application.objects.select_related("portcullis_settings").filter(client_id=client_id)
)


def load_application(client_id: str) -> Any | None:
    """The application with its Portcullis settings, in one query; None when unknown."""
    if not isinstance(client_id, str) or not client_id or "\x00" in client_id or len(client_id) > 255:
        return None
    return _applications.get(client_id, router.db_for_read(Application))
