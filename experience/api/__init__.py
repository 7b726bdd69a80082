"""The Experience API (SPEC §2): the interaction engine as JSON, for a sign-in UI a team draws
itself. Session-based with Django's CSRF; a thin face over ``experience.interaction`` (the rules
live there once). The routes are in ``experience.api.urls``, the OpenAPI schema at ``/api/schema/``."""
