"""Settings of the test project: no database, unified_obs's route middleware first."""

from __future__ import annotations

DEBUG = False
SECRET_KEY = "test-only"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.django_project.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE = [
    "unified_obs.django.RouteMiddleware",
    "tests.django_project.views.SlowGate",
]
DEBUG_PROPAGATE_EXCEPTIONS = True
LOGGING_CONFIG = None
USE_TZ = True
