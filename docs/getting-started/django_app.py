# A single-file Django service with traces, metrics, logs and probes.
#
# Run:   pip install django gunicorn
#        OTEL_TRACES_EXPORTER=console gunicorn django_app:app --bind 127.0.0.1:8000
# Try:   curl localhost:8000/items/42
#        curl localhost:8000/metrics
#        curl localhost:8000/readyz        (also /livez, /startupz, /healthz)
import django
from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, JsonResponse
from django.urls import path

import unified_obs as obs
from unified_obs.wsgi import ObservabilityMiddleware

tel = obs.setup(service_name="shop", service_version="1.0.0")
log = obs.get_logger(__name__)

settings.configure(
    SECRET_KEY="change-me",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    # first, so spans and metrics are named after the URL pattern: GET /items/<int:item_id>
    MIDDLEWARE=["unified_obs.django.RouteMiddleware"],
    LOGGING_CONFIG=None,  # Django's own records go through unified_obs's JSON lines
)
django.setup()


def read_item(request: HttpRequest, item_id: int) -> JsonResponse:
    log.info("item.read", item_id=item_id)  # carries the request's trace_id and span_id
    return JsonResponse({"id": item_id})


urlpatterns = [path("items/<int:item_id>", read_item)]

app = ObservabilityMiddleware(get_wsgi_application())  # spans, metrics, access log, probes
