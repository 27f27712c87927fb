# A FastAPI service with traces, metrics, logs and probes.
#
# Run:   pip install fastapi uvicorn
#        OTEL_TRACES_EXPORTER=console uvicorn fastapi_app:app --port 8000 --no-access-log
#        (--no-access-log: the middleware writes one access line per request, with its
#        trace id; without it uvicorn writes a second, plain one)
# Try:   curl localhost:8000/items/42      (JSON log lines and, within 5 s, the span)
#        curl localhost:8000/items/0       (a 404: not an error span)
#        curl localhost:8000/metrics       (http_server_request_duration_seconds ...)
#        curl localhost:8000/readyz        (also /livez, /startupz, /healthz)
from fastapi import FastAPI, HTTPException

import unified_obs as obs
from unified_obs.asgi import ObservabilityMiddleware

tel = obs.setup(service_name="shop", service_version="1.0.0")
log = obs.get_logger(__name__)
api = FastAPI()


@api.get("/items/{item_id}")
async def read_item(item_id: int) -> dict[str, int]:
    if item_id == 0:
        raise HTTPException(status_code=404, detail="no such item")
    log.info("item.read", item_id=item_id)  # carries the request's trace_id and span_id
    return {"id": item_id}


app = ObservabilityMiddleware(api)  # outermost: spans, metrics, access log, probes
