"""Settings for a gunicorn server a test starts: the product's settings, plus a header naming the
worker process that answered (so a test can tell the workers apart)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from config.settings import *  # noqa: F403
from config.settings import MIDDLEWARE


def worker_pid(get_response: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def middleware(request: Any) -> Any:
        response = get_response(request)
        response["X-Worker-Pid"] = str(os.getpid())
        return response

    return middleware


MIDDLEWARE = ["tests.live_settings.worker_pid", *MIDDLEWARE]
