"""What the token-returning JSON APIs (the auth API verbs, the headless Identity API) share: which
application calls, and whether it may.

Only an application its admin marked first-party **and** headless may call them (SPEC §3); a
confidential one authenticates as at the token endpoint (``identity.client_auth``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.http import HttpRequest

from experience.errors import EngineError
from identity import client_auth
from identity.models import ApplicationSettings


def api_application(request: HttpRequest, data: Mapping[str, Any]) -> Any:
    """The calling application (``client_id`` in ``data``; HTTP Basic or ``client_secret`` for a
    confidential one). ``invalid_client`` (401) when it cannot be authenticated,
    ``headless_not_allowed`` (403) when it may not use these APIs."""
    try:
        application = client_auth.authenticate_application(request.headers.get("Authorization"), data)
    except (client_auth.InvalidClient, client_auth.TwoMethods):
        raise EngineError("invalid_client") from None
    settings = ApplicationSettings.for_application(application)
    if not (settings.first_party and settings.headless_api):
        raise EngineError("headless_not_allowed")
    return application
