"""Zero-config multiprocess metrics: gunicorn (with and without --preload) and
``uvicorn --workers N`` give exact totals on every scrape with no setting at all."""

from __future__ import annotations

import http.client
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from unified_obs.metrics._prefork import PREFIX, Detection, ProcessFacts, detect, shared_dir

# --- the decision, from facts -------------------------------------------------------------


def _facts(
    *,
    environ: dict[str, str] | None = None,
    own: bytes = b"python\x00app",
    parent: bytes = b"bash",
    spawned: bool = False,
    modules: frozenset[str] = frozenset(),
    alive: dict[int, str] | None = None,
) -> ProcessFacts:
    cmdlines = {100: parent, 200: own}
    started = {100: "5000", 200: "6000"} if alive is None else alive
    return ProcessFacts(
        pid=200,
        ppid=100,
        environ=environ or {},
        modules=modules,
        spawned=spawned,
        cmdline=lambda pid: cmdlines.get(pid, b""),
        start_time=lambda pid: started.get(pid, ""),
    )


_GUNICORN = {"SERVER_SOFTWARE": "gunicorn/27.0.1"}
_GUNICORN_CMD = b"/venv/bin/python\x00-m\x00gunicorn\x00app:app"


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        (_facts(), Detection("", None)),
        (_facts(environ=_GUNICORN, own=_GUNICORN_CMD, parent=_GUNICORN_CMD), ("gunicorn", 100)),
        (_facts(environ=_GUNICORN, own=b"gunicorn: worker [app]"), ("gunicorn", 100)),
        (_facts(environ=_GUNICORN, own=_GUNICORN_CMD, parent=b"bash"), ("gunicorn", 200)),
        (_facts(spawned=True, modules=frozenset({"uvicorn._subprocess"})), ("uvicorn", 100)),
        (_facts(spawned=True, modules=frozenset({"hypercorn.asyncio.run"})), ("hypercorn", 100)),
        (_facts(spawned=True), Detection("", None, unsure=True)),
    ],
    ids=[
        "plain",
        "gunicorn-worker",
        "gunicorn-titled-worker",
        "gunicorn-preload-master",
        "uvicorn-worker",
        "hypercorn-worker",
        "unknown-spawned",
    ],
)
def test_the_master_is_found_from_the_process_facts(
    found: ProcessFacts, expected: tuple[object, ...]
) -> None:
    """A gunicorn worker's master is its parent (same command line or a worker title); a
    gunicorn process that is not a fork of another is the master (--preload); a uvicorn
    worker's master is the supervisor that spawned it; any other spawned process is unsure."""
    assert tuple(detect(found)[:2]) == tuple(expected[:2])
    assert detect(found).unsure == (len(expected) == 3 and expected[2] is True)


def test_every_worker_of_one_master_gets_the_same_private_directory(tmp_path: Path) -> None:
    """The directory is named after the master's pid and start time, made 0700."""
    worker = _facts(environ=_GUNICORN, own=_GUNICORN_CMD, parent=_GUNICORN_CMD)
    first = shared_dir(worker, base=str(tmp_path))
    again = shared_dir(worker, base=str(tmp_path))
    assert first == again == str(tmp_path / f"{PREFIX}100-5000")
    assert (os.stat(first).st_mode & 0o777) == 0o700


def test_directories_of_masters_gone_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    """A directory whose master no longer runs (or is another process with a reused pid) is
    removed when a worker picks its own; a live master's directory stays."""
    for name in (f"{PREFIX}100-5000", f"{PREFIX}100-4999", f"{PREFIX}777-1", "unrelated"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "counter_1.db").write_bytes(b"x")
    worker = _facts(environ=_GUNICORN, own=_GUNICORN_CMD, parent=_GUNICORN_CMD)
    shared_dir(worker, base=str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{PREFIX}100-5000", "unrelated"]


def test_an_explicit_directory_wins() -> None:
    """With PROMETHEUS_MULTIPROC_DIR set, nothing is detected or made."""
    found = _facts(environ={**_GUNICORN, "PROMETHEUS_MULTIPROC_DIR": "/x"}, own=_GUNICORN_CMD)
    assert shared_dir(found, base="/nonexistent") is None


def test_an_unknown_spawned_worker_gets_one_warning_naming_the_setting() -> None:
    """A process started by multiprocessing under no known server warns once, naming the
    setting, and stays single-process."""
    with pytest.warns(RuntimeWarning, match="PROMETHEUS_MULTIPROC_DIR") as caught:
        assert shared_dir(_facts(spawned=True), base="/nonexistent") is None
    assert len(caught) == 1


def test_a_directory_that_is_not_ours_is_refused(tmp_path: Path) -> None:
    """A symlink planted at the directory's name is not followed: a warning, no directory."""
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / f"{PREFIX}100-5000").symlink_to(tmp_path / "elsewhere")
    worker = _facts(environ=_GUNICORN, own=_GUNICORN_CMD, parent=_GUNICORN_CMD)
    with pytest.warns(RuntimeWarning, match="not ours"):
        assert shared_dir(worker, base=str(tmp_path)) is None


# --- real servers ---------------------------------------------------------------------------

_APP = """
import os
import time

import unified_obs as obs
from unified_obs import metrics

served = obs.counter("app.requests", "Requests served")
obs.setup(service_name="prefork-test", log_level="error", traces_exporter="none",
          logs_exporter="none", metrics_exporter="none", outbound_http=False)
metrics_app = metrics.make_asgi_app()


def app(environ, start_response):
    if environ["PATH_INFO"] == "/metrics":
        status, headers, body = metrics.render(None, None)
        start_response(f"{status} OK", headers)
        return [body]
    time.sleep(0.02)  # keeps this worker busy: concurrent requests go to the others
    served.inc()
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Pid", str(os.getpid()))])
    return [b"ok"]


async def asgi(scope, receive, send):
    if scope["type"] != "http" or scope["path"] == "/metrics":
        await metrics_app(scope, receive, send)
        return
    time.sleep(0.02)  # blocks this worker's loop: concurrent requests go to the others
    served.inc()
    headers = [(b"content-type", b"text/plain"), (b"x-pid", str(os.getpid()).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _server(tmp_path: Path, command: list[str], env: dict[str, str]) -> Iterator[int]:
    """Run ``command`` (with ``{port}`` filled in) from ``tmp_path``; yields the port."""
    (tmp_path / "prefork_app.py").write_text(textwrap.dedent(_APP))
    port = _free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PROMETHEUS_", "OTEL_"))}
    base.update(PYTHONPATH=str(tmp_path), TMPDIR=str(tmp_path / "tmp"), **env)
    (tmp_path / "tmp").mkdir(exist_ok=True)
    argv = [part.format(port=port) for part in command]
    server = subprocess.Popen(
        argv, cwd=tmp_path, env=base, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _get(port, "/metrics")  # waits for the server to answer
        yield port
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)


def _get(port: int, path: str) -> tuple[int, str, bytes]:
    deadline = time.monotonic() + 30
    while True:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.getheader("X-Pid", ""), response.read()
        except (ConnectionError, http.client.RemoteDisconnected):
            assert time.monotonic() < deadline, f"GET {path} kept failing"
            time.sleep(0.05)
        finally:
            connection.close()


def _served(body: bytes) -> float:
    for family in text_string_to_metric_families(body.decode()):
        if family.name == "app_requests":
            return float(family.samples[0].value)
    raise AssertionError("app_requests missing from /metrics")


def _serve_and_scrape(port: int, requests: int, scrapes: int) -> tuple[set[str], list[float]]:
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: _get(port, "/work"), range(requests)))
    assert [status for status, _, _ in answers] == [200] * requests
    totals = [_served(_get(port, "/metrics")[2]) for _ in range(scrapes)]
    return {pid for _, pid, _ in answers}, totals


def _our_dirs(tmp_path: Path) -> list[str]:
    return [p.name for p in (tmp_path / "tmp").iterdir() if p.name.startswith(PREFIX)]


_GUNICORN_CMD_LINE = [
    sys.executable, "-m", "gunicorn", "prefork_app:app", "--workers", "3",
    "--bind", "127.0.0.1:{port}", "--graceful-timeout", "5", "--log-level", "warning",
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("preload", [False, True], ids=["no-preload", "preload"])
def test_gunicorn_workers_are_exact_with_no_setting(tmp_path: Path, preload: bool) -> None:
    """Three gunicorn workers and no PROMETHEUS_MULTIPROC_DIR: every scrape, whichever
    worker answers it, reports exactly the requests served, from one directory named after
    the master; with --preload the master removes it when it stops."""
    requests = 60
    command = _GUNICORN_CMD_LINE + (["--preload"] if preload else [])
    with _server(tmp_path, command, {}) as port:
        pids, totals = _serve_and_scrape(port, requests, scrapes=8)
        dirs = _our_dirs(tmp_path)
    assert len(pids) >= 2, "requests should spread over several workers"
    assert totals == [float(requests)] * 8
    assert len(dirs) == 1
    assert re.fullmatch(re.escape(PREFIX) + r"\d+-\d+", dirs[0])
    if preload:
        assert _our_dirs(tmp_path) == []


_SPAWNING_SERVERS = {
    "uvicorn": [
        sys.executable, "-m", "uvicorn", "prefork_app:asgi", "--workers", "3",
        "--port", "{port}", "--log-level", "warning",
    ],
    "hypercorn": [
        sys.executable, "-m", "hypercorn", "prefork_app:asgi", "--workers", "3",
        "--bind", "127.0.0.1:{port}",
    ],
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(_SPAWNING_SERVERS))
def test_spawned_workers_are_exact_with_no_setting(tmp_path: Path, name: str) -> None:
    """``uvicorn --workers 3`` or ``hypercorn --workers 3`` and no setting: every scrape
    reports exactly the requests served."""
    requests = 60
    command = _SPAWNING_SERVERS[name]
    with _server(tmp_path, command, {}) as port:
        pids, totals = _serve_and_scrape(port, requests, scrapes=8)
        dirs = _our_dirs(tmp_path)
    assert len(pids) >= 2, "requests should spread over several workers"
    assert totals == [float(requests)] * 8
    assert len(dirs) == 1


@pytest.mark.slow
def test_an_explicit_directory_still_wins_under_gunicorn(tmp_path: Path) -> None:
    """PROMETHEUS_MULTIPROC_DIR set: the workers write there and no directory is made."""
    chosen = tmp_path / "chosen"
    chosen.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(chosen)}
    with _server(tmp_path, _GUNICORN_CMD_LINE, env) as port:
        _, totals = _serve_and_scrape(port, 30, scrapes=4)
        dirs = _our_dirs(tmp_path)
    assert totals == [30.0] * 4
    assert dirs == []
    assert list(chosen.glob("counter_*.db"))
