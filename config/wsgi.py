import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

from identity.checks import refuse_to_serve_with_errors  # noqa: E402  after setup

refuse_to_serve_with_errors()

# What is loaded by now (settings, apps, models, the URLconf and its views, which the checks
# import) lives as long as the process: moved out of the cyclic collector's sight, a full
# collection walks only what requests made (in-process, about 2 % of a code flow's CPU, and no
# pause of tens of ms every thousand requests). Garbage of the start-up goes first.
gc.collect()
gc.freeze()
