"""``/media/branding/<name>``: the uploaded branding images (logo, dark-mode logo, favicon).

Only files directly under ``branding/`` of the default storage, named as :func:`experience.branding.image_file`
names them (a random hex name and a known image extension), are served; anything else is a 404, so
no other upload or path (``..``, a subdirectory, an encoded slash) is reachable through this view.
The content type comes from the extension (the upload was sniffed when stored), never from the
bytes; ``nosniff`` keeps the browser from guessing another, and the sandboxing CSP keeps an SVG
opened directly (not through ``<img>``) from running or loading anything. The names are random and
never reused, so the answers may be cached for a year.

A proxy that serves ``MEDIA_ROOT`` itself must send the same headers (docs/deploy.md).
"""

from __future__ import annotations

from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest
from django.views.decorators.http import require_safe

from experience import branding

IMAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
CACHE = "public, max-age=31536000, immutable"


@require_safe
def image(request: HttpRequest, name: str) -> FileResponse:
    extension = branding.stored_image(name)
    if extension is None:
        raise Http404("No such image.")
    response = FileResponse(default_storage.open(f"{branding.UPLOAD_DIRECTORY}/{name}", "rb"),
                            content_type=branding.IMAGE_TYPES[extension])
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = IMAGE_CSP
    response["Cache-Control"] = CACHE
    return response
