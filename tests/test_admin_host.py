"""``tel.serve_admin(host=...)`` binds the address given (loopback by default), so a
Kubernetes probe against the pod IP works once ``host="0.0.0.0"`` is passed."""

from __future__ import annotations

import httpx
import pytest

from unified_obs.testing import capture


def test_default_host_is_loopback_only() -> None:
    """Without ``host`` the admin server listens on 127.0.0.1 and nowhere else on the
    loopback range (127.0.0.2 refuses the connection)."""
    with capture() as cap:
        server = cap.telemetry.serve_admin()
        try:
            assert server.host == "127.0.0.1"
            assert httpx.get(f"http://127.0.0.1:{server.port}/livez").status_code == 200
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"http://127.0.0.2:{server.port}/livez")
        finally:
            server.close()


def test_host_argument_is_honoured() -> None:
    """``host="127.0.0.2"`` binds that address: probes answer there, not on 127.0.0.1."""
    with capture() as cap:
        server = cap.telemetry.serve_admin(host="127.0.0.2")
        try:
            assert server.host == "127.0.0.2"
            assert server.url == f"http://127.0.0.2:{server.port}"
            assert httpx.get(f"{server.url}/readyz").status_code in (200, 503)
            assert httpx.get(f"{server.url}/livez").status_code == 200
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"http://127.0.0.1:{server.port}/livez")
        finally:
            server.close()


def test_host_name_is_resolved() -> None:
    """A host name (``localhost``) is resolved and bound like its address."""
    with capture() as cap:
        server = cap.telemetry.serve_admin(host="localhost")
        try:
            assert server.host == "127.0.0.1"
            assert httpx.get(f"{server.url}/livez").status_code == 200
        finally:
            server.close()
