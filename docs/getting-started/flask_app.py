# A Flask service with traces, metrics, logs and probes.
#
# Run:   pip install flask gunicorn
#        OTEL_TRACES_EXPORTER=console gunicorn flask_app:app --bind 127.0.0.1:8000
# Try:   curl localhost:8000/items/42
#        curl localhost:8000/metrics
#        curl localhost:8000/readyz        (also /livez, /startupz, /healthz)
from flask import Flask

import unified_obs as obs
from unified_obs.wsgi import ObservabilityMiddleware

tel = obs.setup(service_name="shop", service_version="1.0.0")
log = obs.get_logger(__name__)
flask_app = Flask(__name__)


@flask_app.get("/items/<int:item_id>")
def read_item(item_id: int) -> dict[str, int]:
    log.info("item.read", item_id=item_id)  # carries the request's trace_id and span_id
    return {"id": item_id}


app = ObservabilityMiddleware(flask_app)  # outermost: spans, metrics, access log, probes
