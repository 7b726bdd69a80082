import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_asgi_application()

from identity.checks import refuse_to_serve_with_errors  # noqa: E402  after setup

refuse_to_serve_with_errors()
