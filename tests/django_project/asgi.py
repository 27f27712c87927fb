"""The project's ASGI entry point, as ``startproject`` writes it plus two lines of ours."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

import unified_obs as obs
from unified_obs.asgi import ObservabilityMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django_project.settings")
obs.setup()
application = ObservabilityMiddleware(get_asgi_application())
