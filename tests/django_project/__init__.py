"""A real Django project (settings, URLconf, views, ASGI entry point) that the real-server
tests run under uvicorn: ``uvicorn tests.django_project.asgi:application``."""
