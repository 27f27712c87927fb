"""Decorated callables that frameworks inspect: FastAPI dependencies (functions, async
functions, a class instance whose ``__call__`` is decorated, methods) and Flask views
(functions and a ``MethodView``), driven through the frameworks' own test clients."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import Depends, FastAPI, Header
from flask import Flask
from flask.views import MethodView
from opentelemetry.sdk.trace import ReadableSpan

import unified_obs as obs
from unified_obs.testing import Captured, capture

with warnings.catch_warnings():  # starlette nudges towards `httpx2`; `httpx` still works
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient


def ours(cap: Captured) -> list[ReadableSpan]:
    """The spans made by the decorators (FastAPI makes spans of its own)."""
    return [s for s in cap.spans if s.instrumentation_scope.name == "unified_obs.decorators"]  # type: ignore[union-attr]


class UserRepository:
    """A dependency class: FastAPI calls the decorated ``__call__`` with the parameters
    it reads from its signature."""

    @obs.traced(record_args=("x_user",))
    def __call__(self, x_user: Annotated[str, Header()] = "anonymous") -> str:
        """Resolve the user from a header."""
        return x_user.upper()

    @obs.traced
    def permissions(self, user: str) -> list[str]:
        """A plain method used by the endpoint."""
        return ["read"] if user == "ANONYMOUS" else ["read", "write"]


repository = UserRepository()


@obs.traced
async def page_size(limit: int = 10) -> int:
    """An async dependency reading a query parameter."""
    return min(limit, 50)


sessions_closed: list[str] = []


@obs.traced
def db_session() -> Iterator[str]:
    """A ``yield`` dependency (run by FastAPI in a thread pool): cleanup after the response."""
    yield "session-1"
    sessions_closed.append("session-1")


@obs.traced
async def audit_log() -> AsyncIterator[list[str]]:
    """An async ``yield`` dependency."""
    entries: list[str] = []
    yield entries
    sessions_closed.append(f"audit:{len(entries)}")


def make_fastapi_app() -> FastAPI:
    """An app whose dependencies are all decorated."""
    app = FastAPI()

    @app.get("/items")
    async def items(
        user: Annotated[str, Depends(repository)],
        size: Annotated[int, Depends(page_size)],
    ) -> dict[str, object]:
        return {"user": user, "size": size, "permissions": repository.permissions(user)}

    @app.get("/session")
    def session(
        db: Annotated[str, Depends(db_session)], audit: Annotated[list[str], Depends(audit_log)]
    ) -> str:
        audit.append("read")
        return db

    return app


def test_fastapi_dependencies() -> None:
    """FastAPI reads the decorated dependencies' signatures (header, query parameter),
    and each call makes its span."""
    with capture() as cap, TestClient(make_fastapi_app()) as client:
        response = client.get("/items", params={"limit": 99}, headers={"x-user": "ada"})
        assert response.status_code == 200
        assert response.json() == {"user": "ADA", "size": 50, "permissions": ["read", "write"]}
        names = sorted(span.name for span in ours(cap))
        assert names == ["UserRepository.__call__", "UserRepository.permissions", "page_size"]
        call_span = cap.span("UserRepository.__call__")
        assert call_span.attributes["arg.x_user"] == "ada"  # type: ignore[index]
        default = client.get("/items")
        assert default.json()["user"] == "ANONYMOUS"


def test_fastapi_yield_dependencies() -> None:
    """Generator dependencies (sync and async) keep working: FastAPI drives them to the
    end after the response, and each makes one span covering its whole life."""
    sessions_closed.clear()
    with capture() as cap, TestClient(make_fastapi_app()) as client:
        assert client.get("/session").json() == "session-1"
        assert sorted(sessions_closed) == ["audit:1", "session-1"]
        assert sorted(span.name for span in ours(cap)) == ["audit_log", "db_session"]


class Orders(MethodView):
    """A Flask class-based view with decorated handlers."""

    @obs.traced
    def get(self, order_id: int) -> dict[str, int]:
        """Read one order."""
        return {"id": order_id}

    @obs.traced
    def delete(self, order_id: int) -> tuple[str, int]:
        """Refuse to delete."""
        raise PermissionError(f"order {order_id} is locked")


def make_flask_app() -> Flask:
    """An app with a decorated function view and a decorated ``MethodView``."""
    app = Flask(__name__)

    @app.get("/health")
    @obs.traced
    def health() -> str:
        return "ok"

    app.add_url_rule("/orders/<int:order_id>", view_func=Orders.as_view("orders"))

    @app.errorhandler(PermissionError)
    def forbidden(error: PermissionError) -> tuple[str, int]:
        return str(error), 403

    return app


def test_flask_views() -> None:
    """Flask routes a decorated view by its original name and passes URL arguments to
    decorated ``MethodView`` methods; an error reaches Flask's handler unchanged."""
    app = make_flask_app()
    assert "health" in app.view_functions
    with capture() as cap:
        client = app.test_client()
        assert client.get("/health").text == "ok"
        assert client.get("/orders/7").get_json() == {"id": 7}
        refused = client.delete("/orders/7")
        assert (refused.status_code, refused.text) == (403, "order 7 is locked")
        names = sorted(span.name for span in ours(cap))
        assert names == [
            "Orders.delete",
            "Orders.get",
            "make_flask_app.<locals>.health",
        ]
        assert cap.span("Orders.delete").attributes["error.type"] == "PermissionError"  # type: ignore[index]
